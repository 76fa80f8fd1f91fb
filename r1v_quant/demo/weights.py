"""Seeded weights that look like a trained model's to a quantizer.

Plain Gaussian weights make every quantizer look good: no channel matters more
than another.  Trained LLMs and ViTs have a few hidden channels with huge
activations ("massive activations"), carried by large norm weights and a few
large rows of the output projections, and heavy-tailed weight entries.  AWQ
exists because of those channels, so the demo weights have them:

* norm weights ~ 1 +- 0.1, with a handful of fixed channels scaled up;
* ``down_proj`` / ``fc2`` / ``o_proj`` rows of those channels scaled up, so the
  residual stream carries the outliers from layer to layer;
* linear weights ~ N(0, 1/fan_in) with 1% of entries four times larger;
* small layer scales (InternViT's ``ls1``/``ls2``), sizeable position embeddings.

The random LM head predicts more sharply than a trained one (tiny: median top-1 probability 0.997 on
bench_imatrix's prompts); ``logit_scale`` multiplies it for benchmarks that want a gentler KL regime.

Every tensor has its own generator seeded from (seed, name), so a tensor's
values do not depend on which other tensors exist, and big tensors are made in
row chunks so building the full-width slice never holds a 3 GB float32 copy.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

import torch

LM_HEAD = "lm_head.weight"
CHUNK_ELEMENTS = 1 << 24  # rows generated per step are sized to about 64 MB of float32


def outlier_channels(width: int, seed: int, count: int = 4) -> torch.Tensor:
    """The fixed channels that carry massive activations in a stream of this width."""
    g = torch.Generator().manual_seed(seed * 7919 + width)
    return torch.randperm(width, generator=g)[: min(count, width)]


def _generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed((seed << 32) ^ zlib.crc32(name.encode()))


# Fill rules: (regex on the tensor name, kind).  First match wins.
RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), kind)
    for p, kind in [
        (r"(norm\d?|layernorm|norm)\.weight$|mlp1\.0\.weight$", "norm"),
        (r"\.ls[12]$", "layer_scale"),
        (r"position_embedding$", "position"),
        (r"class_embedding$", "small"),
        (r"embed_tokens\.weight$", "embedding"),
        (r"(down_proj|fc2|o_proj|attn\.proj)\.weight$", "residual_out"),
        (r"k_proj\.bias$|q_proj\.bias$", "qk_bias"),
        (r"\.bias$", "bias"),
        (r"\.weight$", "linear"),
    ]
]


def kind_of(name: str) -> str:
    for pattern, kind in RULES:
        if pattern.search(name):
            return kind
    return "small"


def _rows(shape: tuple[int, ...], g: torch.Generator, fill: Callable[[torch.Generator, tuple[int, ...]], torch.Tensor],
          dtype: torch.dtype) -> torch.Tensor:
    """Generate a tensor row chunk by row chunk in a fixed order, each chunk cast to ``dtype`` at once."""
    if len(shape) < 2:
        return fill(g, shape).to(dtype)
    rows, rest = shape[0], shape[1:]
    per_row = 1
    for d in rest:
        per_row *= d
    step = max(1, CHUNK_ELEMENTS // per_row)
    return torch.cat([fill(g, (min(step, rows - r), *rest)).to(dtype) for r in range(0, rows, step)])


def make_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int,
                outlier_scale: float = 1.0, logit_scale: float = 1.0) -> torch.Tensor:
    g = _generator(seed, name)
    kind = kind_of(name)
    width = shape[-1] if kind != "residual_out" else shape[0]
    hot = outlier_channels(width, seed)

    def normal(gen: torch.Generator, s: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(s, generator=gen)

    if kind == "norm":
        t = 1.0 + 0.1 * normal(g, shape)
        t[hot] *= 6.0 * outlier_scale
    elif kind == "layer_scale":
        t = 0.1 + 0.05 * normal(g, shape).abs()
    elif kind == "position":
        t = 0.5 * _rows(shape[1:], g, normal, torch.float32).unsqueeze(0) if len(shape) == 3 else 0.5 * normal(g, shape)
    elif kind == "small":
        t = 0.02 * normal(g, shape)
    elif kind == "embedding":
        t = _rows(shape, g, normal, dtype)
    elif kind == "qk_bias":
        t = 0.5 * normal(g, shape)
    elif kind == "bias":
        t = 0.02 * normal(g, shape)
    else:  # "linear", "residual_out": N(0, 1/fan_in), heavy tails
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d

        def linear(gen: torch.Generator, s: tuple[int, ...]) -> torch.Tensor:
            w = torch.randn(s, generator=gen)
            tails = torch.rand(s, generator=gen) < 0.01
            return torch.where(tails, 4.0 * w, w) / fan_in**0.5

        t = _rows(shape, g, linear, dtype)
        if kind == "residual_out":
            t[hot] *= 8.0 * outlier_scale  # in the target dtype: a power of two is exact
        if logit_scale != 1.0 and name.endswith(LM_HEAD):  # a flatter next-token distribution (benchmarks)
            t = t.float() * logit_scale  # cast back to dtype below
    return t.to(dtype)
