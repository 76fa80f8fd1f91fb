"""AWQ for one Qwen2 decoder layer: scale search, folding, clip search, 4-bit quantization.

Per layer, from the layer's calibration inputs (image and text tokens alike):

1. one float forward captures the input of every linear and each block's output;
2. four scaling groups (``SCALING_GROUPS``): input_layernorm -> q,k,v (loss on the
   attention block output); v_proj -> o_proj only when their shapes match (not
   under GQA); post_attention_layernorm -> gate,up (loss on the MLP output);
   up_proj -> down_proj.  For each, a grid of ratios r: ``s = x^r / w^(1-r)``
   (duo scaling; ``x`` mean |activation| per input channel, ``w`` mean of the
   group-normalised |weight|), normalised by sqrt(max*min); the s whose
   quantize-dequantize gives the lowest output MSE wins;
3. 1/s is folded into the previous norm (or the previous linear's rows), s into
   the weights;
4. clip search for every linear but q/k: per output row and group, the max is
   shrunk by up to ``max_shrink`` and the clip with the lowest output error on a
   token subsample kept;
5. each linear quantized (4 bit, zero point, groups along the input).

All searches use the one quantizer in ``formats.awq_gemm``, so what is searched
is exactly what is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..calibrate.capture import capture_decoder_inputs
from ..engine.linear import Linears
from ..engine.llm import LAYER_PREFIX, attention, mlp, rope_for
from ..formats.awq_gemm import dequantize, quantize_groups
from ..read.config import ModelConfig
from ..read.layout import LLM_LINEARS

NO_CLIP = ("self_attn.q_proj", "self_attn.k_proj")  # their errors are squashed by softmax; AWQ leaves them


@dataclass(frozen=True)
class ScalingGroup:
    name: str
    prev: str  # norm weight or previous linear whose output channels absorb 1/s
    linears: tuple[str, ...]
    block: str  # "attention" | "mlp" | "linear": what the loss is measured on
    prev_is_norm: bool


SCALING_GROUPS = (
    ScalingGroup("attn", "input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                 "attention", True),
    ScalingGroup("vo", "self_attn.v_proj", ("self_attn.o_proj",), "linear", False),
    ScalingGroup("mlp", "post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"), "mlp", True),
    ScalingGroup("down", "mlp.up_proj", ("mlp.down_proj",), "linear", False),
)


@dataclass
class AWQOptions:
    group_size: int = 128
    grid: int = 20
    duo_scaling: bool = True
    max_shrink: float = 0.5
    clip_tokens: int = 512  # tokens subsampled for the clip search
    clip_rows: int = 64  # output rows per clip-search batch (bounds memory)


@dataclass
class LayerReport:
    layer: int
    ratios: dict[str, float] = field(default_factory=dict)  # best grid ratio per scaling group
    losses: dict[str, float] = field(default_factory=dict)  # best loss / loss at ratio 0 (plain RTN scaling)
    skipped: list[str] = field(default_factory=list)
    max_abs_input: dict[str, float] = field(default_factory=dict)  # per linear, float16 overflow watch
    max_abs_hidden: float = 0.0  # residual stream after the layer


@dataclass
class QuantizedLinear:
    q: torch.Tensor  # uint8 [out, in] 0..15
    zeros: torch.Tensor  # uint8 [out, in/G]
    scales: torch.Tensor  # float32 [out, in/G], already representable in float16
    bias: torch.Tensor | None


def fake_quant(w: torch.Tensor, group: int, max_val: torch.Tensor | None = None) -> torch.Tensor:
    q, z, s = quantize_groups(w, group, max_val)
    return dequantize(q, z, s, group).to(w.dtype)


def _flat(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in xs])


class LayerQuantizer:
    """AWQ of decoder layer ``layer`` given float weights ``tensors`` (mutated: folded and clipped)."""

    def __init__(self, cfg: ModelConfig, layer: int, tensors: dict[str, torch.Tensor], opt: AWQOptions):
        self.cfg, self.layer, self.opt = cfg, layer, opt
        self.p = LAYER_PREFIX.format(layer)
        self.t = tensors
        self.report = LayerReport(layer)

    def w(self, short: str) -> torch.Tensor:
        return self.t[self.p + short + ".weight"]

    # --- forward pieces ---------------------------------------------------------
    def _ropes(self, xs: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [rope_for(self.cfg, x.shape[1], x.device, x.dtype) for x in xs]

    def capture(self, xs: Sequence[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """Inputs of every linear and of each block, from one float forward."""
        feats = capture_decoder_inputs(self.cfg, self.layer, self.t, xs)
        for name in LLM_LINEARS:
            self.report.max_abs_input[name] = max(float(f.abs().max()) for f in feats[name])
        return feats

    def _block(self, group: ScalingGroup, weights: dict[str, torch.Tensor], feats: dict[str, list[torch.Tensor]]
               ) -> list[torch.Tensor]:
        """Output of the group's block with some weights replaced (keys: short linear names)."""
        tensors = dict(self.t)
        tensors.update({self.p + k + ".weight": v for k, v in weights.items()})
        lin = Linears(tensors)
        if group.block == "attention":
            return [attention(self.cfg, lin, h, self.layer, r) for h, r in zip(feats["attn_in"],
                                                                              self._ropes(feats["attn_in"]))]
        if group.block == "mlp":
            return [mlp(self.cfg, lin, h, self.layer) for h in feats["mlp_in"]]
        name = group.linears[0]
        return [lin(self.p + name, x) for x in feats[name]]

    # --- scale search -------------------------------------------------------------
    def applies(self, group: ScalingGroup) -> bool:
        if group.name == "vo":  # GQA: v_proj's outputs are not o_proj's inputs one to one
            return self.w("self_attn.v_proj").shape[0] == self.w("self_attn.o_proj").shape[1]
        return True

    def search_scale(self, group: ScalingGroup, feats: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        G = self.opt.group_size
        x = _flat(feats[group.linears[0]])
        x_mean = x.abs().float().mean(0)
        ws = torch.cat([self.w(n) for n in group.linears])
        wn = ws.abs().view(-1, G)
        wn = (wn / wn.amax(dim=1, keepdim=True).clamp_min(1e-12)).view(ws.shape)
        w_mean = wn.float().mean(0)
        reference = self._block(group, {}, feats)
        best = (float("inf"), None, 0.0)
        base_loss = None
        for i in range(self.opt.grid):
            r = i / self.opt.grid
            if self.opt.duo_scaling:
                s = x_mean.pow(r) / w_mean.pow(1 - r).clamp_min(1e-4)
            else:
                s = x_mean.pow(r)
            s = s.clamp_min(1e-4)
            s = s / (s.max() * s.min()).sqrt()
            trial = {n: fake_quant(self.w(n) * s, G) / s for n in group.linears}
            out = self._block(group, trial, feats)
            loss = float(sum((o - ref).float().pow(2).sum() for o, ref in zip(out, reference))
                         / sum(ref.numel() for ref in reference))
            if i == 0:
                base_loss = loss
            if loss < best[0]:
                best = (loss, s, r)
        self.report.ratios[group.name] = best[2]
        self.report.losses[group.name] = best[0] / base_loss if base_loss else 1.0
        return best[1]

    def fold(self, group: ScalingGroup, s: torch.Tensor, feats: dict[str, list[torch.Tensor]]) -> None:
        """prev /= s (norm weight, or previous linear's output rows and bias); linears *= s; inputs /= s."""
        prev_w = self.p + group.prev + ".weight"
        if group.prev_is_norm:
            self.t[prev_w] = self.t[prev_w] / s
        else:
            self.t[prev_w] = self.t[prev_w] / s[:, None]
            bias = self.p + group.prev + ".bias"
            if bias in self.t:
                self.t[bias] = self.t[bias] / s
        for n in group.linears:
            self.t[self.p + n + ".weight"] = self.w(n) * s
        for n in group.linears:  # the clip search sees the inputs the scaled weights will see
            feats[n] = [x / s for x in feats[n]]

    # --- clip search --------------------------------------------------------------
    def search_clip(self, name: str, feats: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        G = self.opt.group_size
        w = self.w(name)
        x = _flat(feats[name])
        step = max(1, x.shape[0] // self.opt.clip_tokens)
        x = x[::step][: self.opt.clip_tokens]
        xg = x.view(x.shape[0], -1, G)  # [tokens, groups, G]
        best_max = []
        for rows in w.split(self.opt.clip_rows):
            # per (row, token, group) partial products as one batched matmul over groups
            org_out = torch.einsum("tgk,rgk->rtg", xg, rows.view(rows.shape[0], -1, G))
            org_max = rows.abs().view(rows.shape[0], -1, G).amax(-1)  # [rows, groups]
            best_err = torch.full_like(org_max, float("inf"))
            best = org_max.clone()
            for i in range(int(self.opt.max_shrink * self.opt.grid)):
                max_val = org_max * (1 - i / self.opt.grid)
                q = fake_quant(rows, G, max_val).view(rows.shape[0], -1, G)
                err = (torch.einsum("tgk,rgk->rtg", xg, q) - org_out).pow(2).mean(1)
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best = torch.where(better, max_val, best)
            best_max.append(best)
        return torch.cat(best_max)

    # --- the whole layer -------------------------------------------------------------
    def run(self, xs: Sequence[torch.Tensor], on_step: Callable[[str], None] | None = None
            ) -> tuple[dict[str, QuantizedLinear], dict[str, torch.Tensor]]:
        """Quantize the layer.  Returns the packed-to-be linears and the folded float norms."""
        step = on_step or (lambda what: None)
        step("capture inputs")
        feats = self.capture(xs)
        scales = []
        for group in SCALING_GROUPS:
            if not self.applies(group):
                self.report.skipped.append(group.name)
                continue
            step(f"scale search: {group.name}")
            scales.append((group, self.search_scale(group, feats)))
        for group, s in scales:
            self.fold(group, s, feats)
        out: dict[str, QuantizedLinear] = {}
        for name in LLM_LINEARS:
            step(f"clip + quantize: {name.split('.')[-1]}")
            clip = None if name in NO_CLIP else self.search_clip(name, feats)
            q, z, sc = quantize_groups(self.w(name), self.opt.group_size, clip)
            out[name] = QuantizedLinear(q, z, sc, self.t.get(self.p + name + ".bias"))
        norms = {k: v for k, v in self.t.items() if k.endswith("layernorm.weight")}
        return out, norms

    def dequantized(self, quantized: dict[str, QuantizedLinear], norms: dict[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
        """The layer as the artifact will compute it: folded norms, dequantized linears."""
        tensors = dict(norms)
        for name, ql in quantized.items():
            tensors[self.p + name + ".weight"] = dequantize(ql.q, ql.zeros, ql.scales, self.opt.group_size).to(
                self.t[self.p + name + ".weight"].dtype)
            if ql.bias is not None:
                tensors[self.p + name + ".bias"] = ql.bias
        return tensors

