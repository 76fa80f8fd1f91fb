"""``validate --per-layer``: where an artifact loses its accuracy, layer by layer.

For every decoder layer, and every vision layer: the relative weight error ``||W_artifact - W_source|| / ||W_source||``
of each linear, and the relative error of the layer's output on the eval activations.

AWQ moves per-channel scales between a linear and what feeds it (a norm's gain, the
``up_proj`` rows in front of ``down_proj``, ``v_proj`` rows in front of ``o_proj``), so
its stored weights differ from the source's by those scales although the layer computes
the same function.  The weights are therefore compared as *effective* weights, with each
scale that AWQ can move multiplied back in on both sides (:func:`effective_weights`):
a norm's gain into the columns it feeds, the column norms of ``down_proj`` / ``o_proj``
into the rows of ``up_proj`` / ``v_proj``, and the row norms of those into the columns
of ``down_proj`` / ``o_proj``.  These are invariant to the folds and equal the plain
weights' errors up to a weighting when there are none (GGUF).
Both layers see the same input (the source model's hidden states at that depth), so
the output error is the layer's own, not what earlier layers passed on; it is measured
on the layer's update to the residual stream, ``||(f_a(x) - x) - (f_s(x) - x)|| / ||f_s(x) - x||``,
because the residual itself would hide it.  The source checkpoint is needed for
this (``--source``); the logits figures never use it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..engine.llm import LAYER_PREFIX
from ..read.layout import LLM, LLM_LINEARS, VISION, VISION_LAYER_PREFIX, VISION_LINEARS
from .plot import line_plot


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    denom = float(b.norm())
    return float((a - b).norm()) / denom if denom else float((a - b).norm())


def effective_weights(cfg: Any, w: Any, prefix: str) -> dict[str, torch.Tensor]:
    """The seven linears of one decoder layer with every AWQ-movable scale folded back in."""
    def get(name: str) -> torch.Tensor:
        return w[prefix + name].double()

    c = cfg.llm
    g_in, g_post = get("input_layernorm.weight"), get("post_attention_layernorm.weight")
    q, k, v = (get(f"self_attn.{n}_proj.weight") * g_in for n in "qkv")
    o = get("self_attn.o_proj.weight")
    gate, up = get("mlp.gate_proj.weight") * g_post, get("mlp.up_proj.weight") * g_post
    down = get("mlp.down_proj.weight")
    groups = c.num_heads // c.num_kv_heads
    # o_proj's input channel (head h, dim d) reads v row (h // groups, d)
    o_cols = o.norm(dim=0).view(c.num_kv_heads, groups, c.head_dim).pow(2).sum(1).sqrt().reshape(-1)
    v_rows = v.norm(dim=1).view(c.num_kv_heads, 1, c.head_dim).expand(-1, groups, -1).reshape(-1)
    return {
        "self_attn.q_proj": q, "self_attn.k_proj": k, "self_attn.v_proj": v * o_cols[:, None],
        "self_attn.o_proj": o * v_rows, "mlp.gate_proj": gate,
        "mlp.up_proj": up * down.norm(dim=0)[:, None], "mlp.down_proj": down * up.norm(dim=1),
    }


def effective_vision_weights(cfg: Any, w: Any, prefix: str) -> dict[str, torch.Tensor]:
    """The four linears of one InternViT layer with every AWQ-movable scale folded back in: the norms'
    gains into the columns of ``qkv`` and ``fc1``, and the scales between ``qkv``'s value rows and
    ``proj``'s columns (nothing moves through the GELU in front of ``fc2``)."""
    def get(name: str) -> torch.Tensor:
        return w[prefix + name].double()

    qkv = get("attn.qkv.weight") * get("norm1.weight")
    proj = get("attn.proj.weight")
    width = proj.shape[1]
    v_rows = qkv[2 * width:].norm(dim=1)
    qkv = torch.cat([qkv[: 2 * width], qkv[2 * width:] * proj.norm(dim=0)[:, None]])
    return {"attn.qkv": qkv, "attn.proj": proj * v_rows, "mlp.fc1": get("mlp.fc1.weight") * get("norm2.weight"),
            "mlp.fc2": get("mlp.fc2.weight")}


EFFECTIVE = {LLM: (LAYER_PREFIX, LLM_LINEARS, effective_weights),
             VISION: (VISION_LAYER_PREFIX, VISION_LINEARS, effective_vision_weights)}


def short_name(projection: str) -> str:
    return projection.split(".")[-1]


class LayerComparison:
    """Both versions of one layer (of the language model or the vision tower) on the same inputs: the
    weight error of each linear (on effective weights) and the relative error of the layer's update to
    the residual stream."""

    def __init__(self, cfg: Any, stack: str, layer: int, source: Any, artifact: Any):
        prefix, linears, effective = EFFECTIVE[stack]
        prefix = prefix.format(layer)
        eff_s, eff_a = effective(cfg, source, prefix), effective(cfg, artifact, prefix)
        self.layer = layer
        self.weight_error = {short_name(p): relative_error(eff_a[p], eff_s[p]) for p in linears}
        self.num = self.den = 0.0

    def add(self, x: torch.Tensor, source_out: torch.Tensor, artifact_out: torch.Tensor) -> None:
        self.num += float((artifact_out - source_out).double().pow(2).sum())
        self.den += float((source_out - x).double().pow(2).sum())

    def row(self) -> dict[str, Any]:
        return {"layer": self.layer, "weight_error": self.weight_error,
                "output_error": math.sqrt(self.num / self.den) if self.den else math.sqrt(self.num)}


def plot_layers(path: Path, kind: str, stack: str, layers: list[dict[str, Any]]) -> None:
    linears = [short_name(p) for p in EFFECTIVE[stack][1]]
    series = {p: [row["weight_error"][p] for row in layers] for p in linears}
    series["layer output"] = [row["output_error"] for row in layers]
    what = "decoder layer" if stack == LLM else "vision layer"
    line_plot(path, series, title=f"{kind} artifact: relative error by {what}", x_label=what,
              y_label="relative error (log scale)")
