"""What an ``awq`` run will cost before it starts: calibration tokens, peak memory, FLOPs per layer.

A memory model of the code, buffer by buffer: each step of the run (``embed``: calibration samples
through the vision tower and projector into the LLM's input; ``layer``: one decoder layer read,
searched, quantized, and the next layer's inputs made; ``assemble``: writing the output shards)
holds the buffers listed in :attr:`AWQRunPlan.steps`, each sized from the config, the calibration
and the options.  The peak is the process's memory before the run plus the largest step, on the
host and on the device apart (where the device is the CPU, both are host memory).
``tests/test_awq_plan.py`` checks the prediction against measured peaks.

FLOPs per decoder layer: the matrix products of the two passes over the calibration tokens
(observe, then the reference and every grid candidate of every scaling group), the clip search on
its token subsample, and the forward that makes the next layer's inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.memory import device_free, host_available
from ..engine.runner import EngineOptions
from ..errors import InputError
from ..formats.awq_gemm import PACK, ROWS_PER_STEP
from ..quantize.awq import CLIP_BATCH_ELEMENTS, FAKE_QUANT_ELEMENTS, SCHEMES, AWQOptions
from ..read.config import ModelConfig
from ..read.finite import CHECK_ELEMENTS, CHECK_PEAK_BYTES
from ..read.layout import LLM, VISION
from ..write.awq_export import BLOCK_BYTES

MB = 1 << 20
VISION_CHUNK_TILES = EngineOptions.vision_chunk  # tiles per state of the vision tower
# What the allocators hold beyond the live buffers within a step (freed blocks not yet reused, scratch of
# the matmul libraries): measured 0-23% over the buffers of the layer step on a 1536-wide model
# (tests/test_awq_plan.py), so the plan counts 10% on top.
ALLOCATOR_SLACK = 1.10


@dataclass(frozen=True)
class Calibration:
    """What the prepared calibration samples hold (after truncation to ``seq_len``)."""

    samples: int
    image_samples: int
    tokens: int  # LLM tokens, all samples
    image_tokens: int
    tiles: int  # image tiles through the vision tower
    longest: int  # tokens of the longest sample


@dataclass
class Term:
    what: str
    host: int = 0
    device: int = 0


@dataclass
class Step:
    """One moment of the run and the buffers alive during it."""

    name: str
    terms: list[Term]

    @property
    def host(self) -> int:
        return int(sum(t.host for t in self.terms) * ALLOCATOR_SLACK)

    @property
    def device(self) -> int:
        return int(sum(t.device for t in self.terms) * ALLOCATOR_SLACK)


@dataclass(frozen=True)
class LayerShape:
    """What sizes a layer's buffers: its linears' [out, in] shapes and, per token, the widths of the
    activations a capture holds and of one forward's temporaries."""

    linears: dict[str, tuple[int, int]]
    other_params: int  # norms, biases, layer scales
    width: int  # of the states between layers
    captured: int  # per token: block inputs and outputs and every linear's input
    temporaries: int  # per token: what one forward makes besides (q, k, v, attention, MLP intermediates)
    subsampled: int  # per token: the distinct linear inputs the clip search keeps

    @property
    def params(self) -> int:
        return sum(n * k for n, k in self.linears.values()) + self.other_params


def layer_shape(cfg: ModelConfig, stack: str) -> LayerShape:
    if stack == LLM:
        c = cfg.llm
        h, i = c.hidden_size, c.intermediate_size
        q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        linears = {"self_attn.q_proj": (q, h), "self_attn.k_proj": (kv, h), "self_attn.v_proj": (kv, h),
                   "self_attn.o_proj": (h, q), "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h),
                   "mlp.down_proj": (h, i)}
        return LayerShape(linears, q + 2 * kv + 2 * h, h, captured=5 * h + q + i,
                          temporaries=3 * q + 4 * kv + 2 * h + 3 * i, subsampled=2 * h + q + i)
    v = cfg.vision
    w, i = v.hidden_size, v.intermediate_size
    linears = {"attn.qkv": (3 * w, w), "attn.proj": (w, w), "mlp.fc1": (i, w), "mlp.fc2": (w, i)}
    return LayerShape(linears, 10 * w + 3 * w + i, w, captured=5 * w + i, temporaries=7 * w + 2 * i,
                      subsampled=3 * w + i)


@dataclass
class AWQRunPlan:
    cfg: ModelConfig
    calib: Calibration
    opt: AWQOptions
    compute_bytes: int  # 4 (float32) or 2 (bfloat16)
    source_bytes: int  # bytes per weight in the checkpoint
    on_gpu: bool
    offload: bool  # states between layers in host memory
    base_host: int  # the process before the run (measured)
    vision: bool = True  # the vision tower is quantized too
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        vision = self._layer(VISION, "vision layer") if self.vision and self.calib.tiles else []
        # the patch embeddings open the first phase that runs the vision tower
        patches = [self._patches("vision layer" if vision else "embed")] if self.calib.tiles else []
        self.steps = (patches + vision + self._embed(walk_vision=not vision) + self._layer(LLM, "layer")
                      + self._assemble())

    # --- buffers ---------------------------------------------------------------------
    def _place(self, what: str, nbytes: float, on_device: bool = True) -> Term:
        """A buffer on the compute device (host memory when that is the CPU)."""
        n = int(nbytes)
        return Term(what, device=n) if (self.on_gpu and on_device) else Term(what, host=n)

    def _state(self, what: str, nbytes: float) -> Term:
        return self._place(what, nbytes, on_device=not self.offload)

    def _stream(self, stack: str) -> tuple[int, int]:
        """(tokens of all states, tokens of the largest state) entering a layer of ``stack``."""
        if stack == LLM:
            return self.calib.tokens, self.calib.longest
        t1 = self.cfg.vision.num_patches + 1
        return self.calib.tiles * t1, min(self.calib.tiles, VISION_CHUNK_TILES) * t1

    def _patches(self, phase: str) -> Step:
        """All tiles' pixels (float32) concatenated, then through the patch embedding a chunk of tiles at a
        time: the convolution's input and output, the class token and positions added."""
        v, b = self.cfg.vision, self.compute_bytes
        tokens, chunk = self._stream(VISION)
        pixels = 3 * v.image_size ** 2
        chunk_tiles = min(self.calib.tiles, VISION_CHUNK_TILES)
        return Step(f"{phase}: patch embeddings", [
            Term("the tiles' pixels, concatenated", host=self.calib.tiles * pixels * 4),
            self._place("one chunk of tiles through the patch embedding",
                        chunk_tiles * pixels * b + 3 * chunk * v.hidden_size * b),
            self._state("the tower's inputs (all tiles)", tokens * v.hidden_size * b)])

    def _embed(self, walk_vision: bool) -> list[Step]:
        """The image tokens and the first layer's inputs; the vision tower's forward is part of it
        unless its layers were quantized (and so walked) before."""
        c, v, k = self.cfg.llm, self.cfg.vision, self.calib
        b, sb = self.compute_bytes, self.source_bytes
        shape = layer_shape(self.cfg, VISION)
        tokens, chunk = self._stream(VISION)
        p_in = self.cfg.projector_in
        projector = 2 * p_in + p_in * c.hidden_size + c.hidden_size ** 2 + 2 * c.hidden_size  # mlp1: norm, 2 linears
        image_tokens = self._place("image tokens", k.tiles * self.cfg.tokens_per_tile * c.hidden_size * b)
        forward = [
            Step("embed: vision layer", [
                self._state("vision states, in and out (all tiles)", 2 * tokens * v.hidden_size * b),
                self._place("vision layer weights", shape.params * b),
                Term("its largest tensor as read", host=max(n * kk for n, kk in shape.linears.values()) * sb),
                self._finiteness_check(max(n * kk for n, kk in shape.linears.values())),
                self._place("one chunk of tiles through the layer", chunk * shape.temporaries * b)])]
        return (forward if walk_vision else []) + [
            Step("embed: projector", [
                self._state("vision states (all tiles)", tokens * v.hidden_size * b), image_tokens,
                # missing until an H200 run measured 0.24 GB more than planned at two calibration sizes
                self._place("projector weights", projector * b),
                Term("its largest tensor as read", host=c.hidden_size * self.cfg.projector_in * sb),
                self._place("one chunk of tiles through the projector",
                            min(k.tiles, VISION_CHUNK_TILES) * self.cfg.tokens_per_tile * 8 * v.hidden_size * b)]),
            Step("embed: tokens", [
                # one tensor: read whole on the host, then moved (on a GPU both, for a moment)
                image_tokens, Term("embedding table as read", host=c.vocab_size * c.hidden_size * sb,
                                   device=c.vocab_size * c.hidden_size * sb if self.on_gpu else 0),
                self._finiteness_check(c.vocab_size * c.hidden_size),
                self._state("first layer's inputs", k.tokens * c.hidden_size * b)]),
        ]

    def _layer(self, stack: str, label: str) -> list[Step]:
        o, b = self.opt, self.compute_bytes
        shape = layer_shape(self.cfg, stack)
        tokens, largest_state = self._stream(stack)
        lins = {n: rows * k for n, (rows, k) in shape.linears.items()}
        linear = sum(lins.values())
        chunk = max(min(o.chunk_tokens, tokens), largest_state)
        biggest_group = max(sum(lins[n] for n in g.linears) for g in SCHEMES[stack].groups)
        states_in = self._state("the layer's inputs (all tokens)", tokens * shape.width * b)
        weights = self._place("layer weights (folded in place)", shape.params * b)
        sub = self._place("clip subsample", min(o.clip_tokens, tokens) * shape.subsampled * b)
        sample = self._place("one state's forward temporaries", largest_state * shape.temporaries * b)
        packed = Term("packed layer", host=linear // 2 + 3 * linear // o.group_size)
        fake = max(self._fake_quant_bytes(n, k) for n, k in shape.linears.values())
        return [
            Step(f"{label}: read", [states_in, weights,
                                    Term("one tensor as read", host=max(lins.values()) * self.source_bytes),
                                    self._finiteness_check(max(lins.values()))]),
            Step(f"{label}: scale search", [
                states_in, weights, sub, sample,
                self._place("one chunk's activations", chunk * shape.captured * b),
                self._place("one scaling group's candidate", biggest_group * b),
                self._place("fake-quantization temporaries", fake),
                self._place("a block's output and its error", largest_state * shape.width * (b + 8))]),
            Step(f"{label}: clip and quantize", [
                states_in, weights, sub, packed,
                self._place("one linear's integers", max(lins.values()) * 1.2),
                self._packing(shape),
                self._place("clip search batch", self._clip_batch_bytes(stack, tokens))]),
            Step(f"{label}: next inputs", [
                states_in, self._state("the next layer's inputs (all tokens)", tokens * shape.width * b),
                weights, sample, packed]),
        ]

    def _clip_batch_bytes(self, stack: str, tokens: int) -> int:
        """The clip search's largest batch: products [rows, tokens, groups] (a few alive at once), the
        rows' fake-quantized copy and the subsample's inputs, in float32."""
        o = self.opt
        t = min(o.clip_tokens, tokens)
        worst = 0
        for name, (n, k) in layer_shape(self.cfg, stack).linears.items():
            if name in SCHEMES[stack].no_clip:
                continue
            groups = k // o.group_size
            rows = min(n, max(1, CLIP_BATCH_ELEMENTS // (t * groups)))
            # org_out and one candidate's products (computed in place), the subsample's inputs
            worst = max(worst, 4 * (2 * rows * t * groups + t * k) + self._fake_quant_bytes(rows, k))
        return worst

    def _packing(self, shape: LayerShape) -> Term:
        """Packing one linear, on the host: from a GPU, a copy of its integers (and float32 scales); then
        row blocks of its transpose, ``ROWS_PER_STEP`` x out-features integers at a time: the block in int64
        (8 bytes an integer), the packed word and three temporaries of its size (1 byte an integer each)."""
        worst = 0
        for n, k in shape.linears.values():
            copy = n * k + n * (k // self.opt.group_size) * 5 if self.on_gpu else 0
            worst = max(worst, copy + ROWS_PER_STEP * n * (8 + 4 * 8 // PACK))
        return Term("packing one linear (on the host)", host=worst)

    @staticmethod
    def _finiteness_check(elements: int) -> Term:
        """Every tensor read is checked for NaN/Inf on the host, ``CHECK_ELEMENTS`` at a time."""
        return Term("its finiteness check", host=CHECK_PEAK_BYTES * min(elements, CHECK_ELEMENTS) // CHECK_ELEMENTS)

    @staticmethod
    def _fake_quant_bytes(rows: int, k: int) -> int:
        """A block of rows through quantize-dequantize: about eight float32 copies of it at once."""
        return 8 * min(rows, max(1, FAKE_QUANT_ELEMENTS // k)) * k * 4

    def _assemble(self) -> list[Step]:
        c = self.cfg.llm
        shape = layer_shape(self.cfg, LLM)
        linear = shape.params - shape.other_params
        block = min(c.vocab_size * c.hidden_size * 2, BLOCK_BYTES)
        values = block // 2
        return [Step("assemble", [Term("a block of a source tensor: as read, its finiteness mask, in float16",
                                       host=values * (self.source_bytes + 2 + 2)),
                                  Term("freed blocks glibc keeps before trimming (twice the largest)",
                                       host=2 * block),
                                  Term("one packed layer", host=linear // 2 + shape.other_params * 2)])]

    # --- totals ----------------------------------------------------------------------
    def peak(self) -> tuple[int, int, str]:
        """(host bytes, device bytes, the step that peaks on the host)."""
        worst = max(self.steps, key=lambda s: s.host)
        return self.base_host + worst.host, max(s.device for s in self.steps), worst.name

    def step_peaks(self) -> dict[str, tuple[int, int]]:
        """Per phase (vision layer, embed, layer, assemble): (host bytes, device bytes) at its peak, base
        included."""
        out: dict[str, tuple[int, int]] = {}
        for s in self.steps:
            phase = s.name.split(":")[0]
            h, d = out.get(phase, (0, 0))
            out[phase] = (max(h, self.base_host + s.host), max(d, s.device))
        return out

    def flops(self, stack: str) -> int:
        """Matrix-product FLOPs of one layer of ``stack``: observe, the reference and every candidate of
        every scaling group in the search, the clip search, the next layer's inputs."""
        o = self.opt
        shape = layer_shape(self.cfg, stack)
        lins = {n: rows * k for n, (rows, k) in shape.linears.items()}
        tokens, largest = self._stream(stack)
        if stack == LLM:
            attn_width = self.cfg.llm.num_heads * self.cfg.llm.head_dim
            span = self.calib.longest / 2  # causal: half the sequence on average
        else:
            attn_width, span = self.cfg.vision.hidden_size, self.cfg.vision.num_patches + 1
        attn = 2 * 2 * attn_width * span  # QK^T and AV, per token
        forward = tokens * (2 * sum(lins.values()) + attn)
        search = 0.0
        groups = [g for g in SCHEMES[stack].groups
                  if not (g.name == "vo" and stack == LLM and self.cfg.llm.num_kv_heads != self.cfg.llm.num_heads)]
        out_proj, down = ("self_attn.o_proj", "mlp.down_proj") if stack == LLM else ("attn.proj", "mlp.fc2")
        for g in groups:
            block = sum(2 * lins[x] for x in g.linears)
            if g.block == "attention":
                block += 2 * lins[out_proj] + attn
            elif g.block == "mlp":
                block += 2 * lins[down]
            search += tokens * block * (o.grid + 1)
        clipped = sum(v for n, v in lins.items() if n not in SCHEMES[stack].no_clip)
        clip = 2 * clipped * min(o.clip_tokens, tokens) * (1 + int(o.max_shrink * o.grid))
        return int(3 * forward + search + clip)

    def flops_per_layer(self) -> int:
        return self.flops(LLM)

    def total_flops(self) -> int:
        vision = self.flops(VISION) * self.cfg.vision.num_layers if self.vision and self.calib.tiles else 0
        return vision + self.flops(LLM) * self.cfg.llm.num_layers

    def summary(self) -> dict[str, Any]:
        host, device, worst = self.peak()
        return {
            "calibration": vars(self.calib),
            "chunk_tokens": self.opt.chunk_tokens,
            "peak_host_bytes": host, "peak_device_bytes": device, "peak_step": worst,
            "base_host_bytes": self.base_host,
            "steps": [{"step": s.name, "host_bytes": s.host, "device_bytes": s.device,
                       "buffers": [vars(t) for t in s.terms]} for s in self.steps],
            "phase_peaks": {k: {"host_bytes": h, "device_bytes": d} for k, (h, d) in self.step_peaks().items()},
            "flops_per_layer": self.flops(LLM),
            "flops_per_vision_layer": self.flops(VISION) if self.vision and self.calib.tiles else 0,
            "flops_total": self.total_flops(),
            "layers": self.cfg.llm.num_layers,
            "vision_layers": self.cfg.vision.num_layers if self.vision else 0,
        }


def human(n: float) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"


# Options tried, in order, when a plan does not fit: the first that fits is named in the error.
ALTERNATIVES: list[dict[str, Any]] = [
    {"offload": True}, {"chunk_tokens": 2048}, {"offload": True, "chunk_tokens": 2048},
    {"offload": True, "chunk_tokens": 1024}, {"offload": True, "chunk_tokens": 512},
]


def misfit(plan: AWQRunPlan, device: str) -> str | None:
    """Why ``plan`` does not fit this machine now, or None."""
    host, dev, phase = plan.peak()
    avail = host_available()
    problems = []
    if avail is not None and host - plan.base_host > avail:
        problems.append(f"host memory {human(host)} at its peak ({phase}), {human(plan.base_host + avail)} "
                        "available")
    free = device_free(device)
    if free is not None and dev > free:
        problems.append(f"{device} memory {human(dev)}, {human(free)} free")
    return "; ".join(problems) or None


def check_fit(plan: AWQRunPlan, device: str, replan: Callable[..., AWQRunPlan]) -> None:
    """Refuse a run that cannot fit (one line, exit 2), naming options that would."""
    why = misfit(plan, device)
    if why is None:
        return
    c = plan.calib
    tries = list(ALTERNATIVES) + [{"samples": max(1, c.samples // d)} for d in (2, 4, 8)]
    for changes in tries:
        if changes.get("chunk_tokens", 0) >= plan.opt.chunk_tokens or \
                (changes.get("offload") and plan.offload):
            continue
        if misfit(replan(**changes), device) is None:
            hint = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in changes.items())
            raise InputError(f"this run needs more memory than there is: {why}; it would fit with {hint} "
                             "(see --plan)")
    raise InputError(f"this run needs more memory than there is: {why}; no smaller setting found "
                     "(see --plan; try fewer --samples or a shorter --seq-len)")


__all__ = ["AWQRunPlan", "Calibration", "Step", "Term", "check_fit", "human"]
