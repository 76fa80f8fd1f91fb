"""AWQ for one transformer layer (a Qwen2 decoder layer or an InternViT layer), in chunks of tokens.

Per layer, from the layer's calibration inputs (image and text tokens alike), with the layer as a
:class:`~r1v_quant.calibrate.capture.LayerProgram`:

1. **observe** (one pass over the inputs, chunk by chunk): per input channel of every linear the
   mean |x| and the largest |x| (running sums, :class:`~r1v_quant.calibrate.stats.ChannelStats`),
   and a fixed-size subsample of tokens drawn across all inputs for the clip search;
2. **search** (a second pass): for each scaling group (:data:`SCHEMES`) a grid of ratios r,
   ``s = x^r / w^(1-r)`` (duo scaling; ``x`` the mean |activation| per input channel, ``w`` the mean
   of the group-normalised |weight|) normalised by sqrt(max*min); each candidate's output MSE on
   the group's block (attention, MLP, or the linear alone) is accumulated chunk by chunk, against
   the float block's output, and so is plain round-to-nearest's (s = 1) for the report;
3. **fold**: 1/s into what feeds the group (a norm's weight and bias, or the rows of the previous
   linear), s into the group's weights -- the layer computes the same function;
4. **clip search** on the subsample for every linear but the LLM's q/k (per output row and group
   the max is shrunk by up to ``max_shrink``; the clip with the lowest output error is kept);
5. **quantize** each linear (4 bit, zero point, groups along the input).

Memory: what a pass keeps per token is nothing; each chunk's activations (bounded by
``chunk_tokens``) are recomputed from the layer's input states and dropped.  Weights: the layer
once in the compute dtype (folded in place), plus one group's candidate at a time.
All searches use the one quantizer in ``formats.awq_gemm``, so what is searched is what is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..calibrate.capture import Capture, LayerProgram
from ..calibrate.stats import ChannelStats, TokenSubsample
from ..engine.linear import Linears
from ..engine.memory import release_free_memory
from ..formats.awq_gemm import dequantize, quantize_groups
from ..read.layout import LLM, LLM_LINEARS, VISION, VISION_LINEARS

FAKE_QUANT_ELEMENTS = 1 << 22  # weights quantized per step (16 MB of float32): bounds the temporaries
CLIP_BATCH_ELEMENTS = 1 << 24  # the clip search's [rows, tokens, groups] products, ~64 MB of float32 each


@dataclass(frozen=True)
class ScalingGroup:
    name: str
    prev: str  # norm (weight, and bias if any) or linear whose output rows absorb 1/s
    linears: tuple[str, ...]
    block: str  # "attention" | "mlp" | "linear": what the loss is measured on
    ref: str  # the capture key of that block's float output
    prev_part: tuple[int, int] | None = None  # (part, parts): only these rows of a fused prev (qkv's values)


@dataclass(frozen=True)
class LayerScheme:
    linears: tuple[str, ...]
    no_clip: tuple[str, ...]  # their errors are squashed by softmax; AWQ leaves them
    groups: tuple[ScalingGroup, ...]


SCHEMES: dict[str, LayerScheme] = {
    LLM: LayerScheme(LLM_LINEARS, ("self_attn.q_proj", "self_attn.k_proj"), (
        ScalingGroup("attn", "input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                     "attention", "attn_out"),
        ScalingGroup("vo", "self_attn.v_proj", ("self_attn.o_proj",), "linear", "attn_out"),
        ScalingGroup("mlp", "post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"), "mlp", "mlp_out"),
        ScalingGroup("down", "mlp.up_proj", ("mlp.down_proj",), "linear", "mlp_out"),
    )),
    # InternViT: nothing is folded through the GELU between fc1 and fc2; qkv's value rows feed proj
    VISION: LayerScheme(VISION_LINEARS, (), (
        ScalingGroup("attn", "norm1", ("attn.qkv",), "attention", "attn_out"),
        ScalingGroup("vo", "attn.qkv", ("attn.proj",), "linear", "attn_out", prev_part=(2, 3)),
        ScalingGroup("mlp", "norm2", ("mlp.fc1",), "mlp", "mlp_out"),
    )),
}


@dataclass
class AWQOptions:
    group_size: int = 128
    grid: int = 20
    duo_scaling: bool = True
    max_shrink: float = 0.5
    clip_tokens: int = 512  # tokens subsampled for the clip search
    chunk_tokens: int = 4096  # tokens whose activations are held at once


@dataclass
class LayerReport:
    layer: int
    stack: str = LLM
    ratios: dict[str, float] = field(default_factory=dict)  # best grid ratio per scaling group
    # per scaling group: the best candidate's output MSE divided by that of plain round-to-nearest
    # (s = 1, no scaling) on the same tokens; below 1 where AWQ's scaling helps
    loss_vs_rtn: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    max_abs_input: dict[str, float] = field(default_factory=dict)  # per linear, float16 overflow watch
    max_abs_hidden: float = 0.0  # residual stream after the layer
    tokens: int = 0


@dataclass
class QuantizedLinear:
    q: torch.Tensor  # uint8 [out, in] 0..15
    zeros: torch.Tensor  # uint8 [out, in/G]
    scales: torch.Tensor  # float32 [out, in/G], already representable in float16


def fake_quant(w: torch.Tensor, group: int, s: torch.Tensor | None = None,
               max_val: torch.Tensor | None = None) -> torch.Tensor:
    """``w`` as the artifact will hold it (quantize, dequantize), in ``w``'s dtype; with ``s``, the weights
    are quantized as ``w * s`` and scaled back by ``1 / s``.  Row blocks bound the temporaries."""
    out = torch.empty_like(w)
    step = row_block(w)
    for r0 in range(0, w.shape[0], step):
        blk = w[r0:r0 + step].float()
        if s is not None:
            blk = blk * s
        mv = max_val[r0:r0 + step] if max_val is not None else None
        dq = dequantize(*quantize_groups(blk, group, mv), group)
        out[r0:r0 + step] = (dq / s if s is not None else dq).to(w.dtype)
    return out


def row_block(w: torch.Tensor) -> int:
    """Rows of ``w`` quantized per step."""
    return max(1, FAKE_QUANT_ELEMENTS // w.shape[1])


def chunks(states: Sequence[torch.Tensor], chunk_tokens: int) -> Iterator[list[int]]:
    """Indices of consecutive states holding about ``chunk_tokens`` tokens (at least one state each)."""
    current: list[int] = []
    tokens = 0
    for i, x in enumerate(states):
        n = x.numel() // x.shape[-1]
        if current and tokens + n > chunk_tokens:
            yield current
            current, tokens = [], 0
        current.append(i)
        tokens += n
    if current:
        yield current


class LayerQuantizer:
    """AWQ of one layer given its float weights ``tensors`` (a dict, folded in place)."""

    def __init__(self, program: LayerProgram, tensors: dict[str, torch.Tensor], opt: AWQOptions):
        self.prog, self.opt = program, opt
        self.p = program.prefix
        self.t = tensors
        self.scheme = SCHEMES[program.stack]
        self.report = LayerReport(program.index, program.stack)
        self.groups = [g for g in self.scheme.groups if self.applies(g)]
        self.report.skipped = [g.name for g in self.scheme.groups if g not in self.groups]
        self.stats: dict[str, ChannelStats] = {}
        self.alias: dict[str, str] = {}  # linear -> the linear whose input it shares (q, k, v; gate, up)
        self.sub: TokenSubsample | None = None
        self.scales: dict[str, torch.Tensor] = {}  # group -> chosen s

    def w(self, short: str) -> torch.Tensor:
        return self.t[self.p + short + ".weight"]

    def applies(self, group: ScalingGroup) -> bool:
        if group.prev_part is None and group.block != "linear":
            return True
        rows = self.w(group.prev).shape[0] // (group.prev_part[1] if group.prev_part else 1)
        # GQA: v_proj's outputs are not o_proj's inputs one to one
        return rows == self.w(group.linears[0]).shape[1]

    def _device(self, x: torch.Tensor) -> torch.Tensor:
        t = next(iter(self.t.values()))
        return x.to(t.device, t.dtype)

    # --- 1. observe ---------------------------------------------------------------
    def observe(self, states: Sequence[torch.Tensor]) -> None:
        total = sum(x.numel() // x.shape[-1] for x in states)
        self.report.tokens = total
        self.sub = TokenSubsample(total, self.opt.clip_tokens)
        first = 0
        for state in states:
            x = self._device(state)
            cap = self.prog.capture(Linears(self.t), x)
            n = x.numel() // x.shape[-1]
            local = self.sub.take(first, n)
            first += n
            owner: dict[int, str] = {}
            for name in self.scheme.linears:
                key = self.alias.setdefault(name, owner.setdefault(id(cap[name]), name))
                if key != name:
                    continue
                self.stats.setdefault(name, ChannelStats()).add(cap[name])
                self.sub.add(name, cap[name], local)
            del cap, x
            release_free_memory()  # this state's captures, before the next state's (or the search's)
        for name in self.scheme.linears:
            self.report.max_abs_input[name] = self.stats[self.alias[name]].max_abs

    # --- 2. search ------------------------------------------------------------------
    def candidates(self, group: ScalingGroup) -> list[torch.Tensor | None]:
        """The grid's scales for ``group`` (plain round-to-nearest, None, last)."""
        x_mean = self.stats[self.alias[group.linears[0]]].mean_abs.to(self.w(group.linears[0]).device)
        w_mean = self._weight_mean(group)
        out: list[torch.Tensor | None] = []
        for i in range(self.opt.grid):
            r = i / self.opt.grid
            s = x_mean.pow(r) / w_mean.pow(1 - r).clamp_min(1e-4) if self.opt.duo_scaling else x_mean.pow(r)
            s = s.clamp_min(1e-4)
            out.append(s / (s.max() * s.min()).sqrt())
        return out + [None]

    def _weight_mean(self, group: ScalingGroup) -> torch.Tensor:
        """Per input channel, the mean over the group's output rows of |w| divided by its quantization
        group's max (row blocks at a time: no float32 copy of the whole group)."""
        G = self.opt.group_size
        total, rows = None, 0
        for n in group.linears:
            w = self.w(n)
            for r0 in range(0, w.shape[0], row_block(w)):
                blk = w[r0:r0 + row_block(w)].float().abs()
                g = blk.view(blk.shape[0], -1, G)
                part = (g / g.amax(dim=-1, keepdim=True).clamp_min(1e-12)).view(blk.shape).sum(0, dtype=torch.float64)
                total = part if total is None else total + part
                rows += blk.shape[0]
        assert total is not None
        return (total / rows).float()

    def _block(self, group: ScalingGroup, weights: dict[str, torch.Tensor], cap: Capture) -> torch.Tensor:
        tensors = dict(self.t)
        tensors.update({self.p + k + ".weight": v for k, v in weights.items()})
        lin = Linears(tensors)
        if group.block == "attention":
            return self.prog.attention(lin, cap["attn_in"])
        if group.block == "mlp":
            return self.prog.mlp(lin, cap["mlp_in"])
        name = group.linears[0]
        return lin(self.p + name, cap[name])

    def search(self, states: Sequence[torch.Tensor], on_step: Callable[[str], None]) -> None:
        cands = {g.name: self.candidates(g) for g in self.groups}
        losses = {g.name: [0.0] * len(cands[g.name]) for g in self.groups}
        G = self.opt.group_size
        for n_chunk, idx in enumerate(chunks(states, self.opt.chunk_tokens)):
            on_step(f"scale search, chunk {n_chunk + 1}")
            caps = [self.prog.capture(Linears(self.t), self._device(states[i])) for i in idx]
            for g in self.groups:
                for c, s in enumerate(cands[g.name]):
                    trial = {n: fake_quant(self.w(n), G, s) for n in g.linears}
                    losses[g.name][c] += sum(float((self._block(g, trial, cap) - cap[g.ref]).float().pow(2).sum())
                                             for cap in caps)
                    del trial
                    release_free_memory()  # each candidate's temporaries, before the next one's
            del caps
        for g in self.groups:
            grid = losses[g.name][:-1]
            best = min(range(len(grid)), key=grid.__getitem__)  # the first of equal losses, as a strict < scan
            self.scales[g.name] = cands[g.name][best]  # type: ignore[assignment]
            self.report.ratios[g.name] = best / self.opt.grid
            rtn = losses[g.name][-1]
            self.report.loss_vs_rtn[g.name] = grid[best] / rtn if rtn else 1.0

    # --- 3. fold ----------------------------------------------------------------------
    def fold(self) -> None:
        """prev /= s (a norm's weight and bias, or the previous linear's output rows and bias); linears *= s."""
        for g in self.groups:
            s = self.scales[g.name]
            for kind in ("weight", "bias"):
                name = f"{self.p}{g.prev}.{kind}"
                if name not in self.t:
                    continue
                t = self.t[name]
                if g.prev_part is None:
                    self.t[name] = (t / (s if kind == "bias" or t.dim() == 1 else s[:, None])).to(t.dtype)
                    continue
                part, parts = g.prev_part
                rows = t.shape[0] // parts
                div = s if t.dim() == 1 else s[:, None]
                t = t.clone()
                t[part * rows:(part + 1) * rows] = (t[part * rows:(part + 1) * rows] / div).to(t.dtype)
                self.t[name] = t
            for n in g.linears:
                self.t[self.p + n + ".weight"] = (self.w(n) * s).to(self.w(n).dtype)

    # --- 4, 5. clip and quantize ----------------------------------------------------------
    def _input_scale(self, name: str) -> torch.Tensor | None:
        return next((self.scales[g.name] for g in self.groups if name in g.linears), None)

    def search_clip(self, name: str) -> torch.Tensor:
        assert self.sub is not None
        G = self.opt.group_size
        w = self.w(name)
        x = self.sub.get(self.alias[name]).float()
        s = self._input_scale(name)
        if s is not None:  # the clip search sees the inputs the scaled weights will see
            x = x / s
        xg = x.view(x.shape[0], -1, G)  # [tokens, groups, G]
        best_max = []
        # rows per batch: each [rows, tokens, groups] product holds about CLIP_BATCH_ELEMENTS floats
        batch = max(1, CLIP_BATCH_ELEMENTS // (xg.shape[0] * xg.shape[1]))
        for rows in w.split(batch):
            rows = rows.float()
            # per (row, token, group) partial products as one batched matmul over groups
            org_out = torch.einsum("tgk,rgk->rtg", xg, rows.view(rows.shape[0], -1, G))
            org_max = rows.abs().view(rows.shape[0], -1, G).amax(-1)  # [rows, groups]
            best_err = torch.full_like(org_max, float("inf"))
            best = org_max.clone()
            for i in range(int(self.opt.max_shrink * self.opt.grid)):
                max_val = org_max * (1 - i / self.opt.grid)
                q = fake_quant(rows, G, max_val=max_val).view(rows.shape[0], -1, G)
                # in place: two [rows, tokens, groups] tensors alive at once (org_out and this one)
                err = torch.einsum("tgk,rgk->rtg", xg, q).sub_(org_out).pow_(2).mean(1)
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best = torch.where(better, max_val, best)
            best_max.append(best)
        return torch.cat(best_max)

    def quantize(self, dequantize_in_place: bool) -> Iterator[tuple[str, QuantizedLinear]]:
        """Each linear, clipped and quantized, one at a time; with ``dequantize_in_place`` its float weights
        are replaced by the dequantized ones (the layer then computes what the artifact will)."""
        G = self.opt.group_size
        for name in self.scheme.linears:
            clip = None if name in self.scheme.no_clip else self.search_clip(name)
            w = self.w(name)
            n, k = w.shape
            q = torch.empty((n, k), dtype=torch.uint8, device=w.device)
            z = torch.empty((n, k // G), dtype=torch.uint8, device=w.device)
            sc = torch.empty((n, k // G), dtype=torch.float32, device=w.device)
            for r0 in range(0, n, row_block(w)):
                rows = slice(r0, r0 + row_block(w))
                q[rows], z[rows], sc[rows] = quantize_groups(w[rows], G, clip[rows] if clip is not None else None)
                if dequantize_in_place:  # the float weights become what the artifact holds
                    w[rows] = dequantize(q[rows], z[rows], sc[rows], G).to(w.dtype)
            yield name, QuantizedLinear(q, z, sc)
            del q, z, sc, clip

    def float_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors of the layer that stay float (folded norms, biases, layer scales)."""
        packed = {self.p + n + ".weight" for n in self.scheme.linears}
        return {k: v for k, v in self.t.items() if k not in packed}
