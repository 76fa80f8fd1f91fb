"""``validate --per-layer``: where an artifact loses its accuracy, layer by layer.

For every decoder layer: the relative weight error ``||W_artifact - W_source|| / ||W_source||``
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..engine import Engine, EngineOptions, Prepared
from ..engine.llm import LAYER_PREFIX, decoder_layer, rope_for
from ..errors import InputError
from ..read import open_checkpoint
from ..read.artifact import WeightSource
from ..read.fingerprint import fingerprint
from .plot import line_plot
from .reference import DTYPES
from .reference_file import Reference

PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


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


def _short(projection: str) -> str:
    return projection.split(".")[-1]


def diagnose(source_dir: Path, artifact: WeightSource, ref: Reference, prepared: Sequence[Prepared], opt: Any,
             say: Callable[[str], None]) -> dict[str, Any]:
    ckpt = open_checkpoint(source_dir)
    if fingerprint(ckpt) != ref.meta["model"]["fingerprint"]:
        raise InputError(f"{source_dir}: --source is not the model the reference was made from (fingerprint differs)")
    def shape(c: Any) -> tuple[int, ...]:  # (eps and rope base may differ by float32 rounding in a GGUF)
        return (c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size, c.vocab_size)

    if shape(ckpt.config.llm) != shape(artifact.config.llm):
        raise InputError(f"{source_dir}: --source and the artifact have different language-model shapes")
    options = EngineOptions(device=opt.device, dtype=DTYPES[opt.dtype])
    src = Engine(ckpt, options)
    art = Engine(artifact, options)  # type: ignore[arg-type]
    cfg = ckpt.config
    say("per-layer: embedding the eval samples with the source model")
    hidden = src.embed(prepared)
    layers = []
    for i in range(cfg.llm.num_layers):
        say(f"per-layer: decoder layer {i}")
        ws, wa = src.load(f"llm.layer.{i}"), art.load(f"llm.layer.{i}")
        prefix = LAYER_PREFIX.format(i)
        eff_s, eff_a = effective_weights(cfg, ws, prefix), effective_weights(cfg, wa, prefix)
        weight_error = {_short(p): relative_error(eff_a[p], eff_s[p]) for p in PROJECTIONS}
        num = den = 0.0
        out = []
        for x in hidden:
            rope = rope_for(cfg, x.shape[1], x.device, x.dtype)
            ys, ya = decoder_layer(cfg, ws, x, i, rope), decoder_layer(cfg, wa, x, i, rope)
            num += float((ya - ys).double().pow(2).sum())
            den += float((ys - x).double().pow(2).sum())
            out.append(ys)
        hidden = out
        layers.append({"layer": i, "weight_error": weight_error,
                       "output_error": math.sqrt(num / den) if den else math.sqrt(num)})
        del ws, wa
    projections = [_short(p) for p in PROJECTIONS]
    result: dict[str, Any] = {"projections": projections, "layers": layers}
    if opt.plot is not None:
        series = {p: [row["weight_error"][p] for row in layers] for p in projections}
        series["layer output"] = [row["output_error"] for row in layers]
        line_plot(Path(opt.plot), series, title=f"{artifact.kind} artifact: relative error by decoder layer",
                  x_label="decoder layer", y_label="relative error (log scale)")
        result["plot"] = str(opt.plot)
    return result
