"""Non-linear 4-bit quants: IQ4_NL (blocks of 32) and IQ4_XS (super-blocks of 256, 6-bit sub-scales).

Both come from ggml's ``quantize_row_iq4_nl_impl`` with ``ntry = 7``, which ``quantize_iq4_nl`` and
``quantize_iq4_xs`` call with and without importance alike (without it the weights are ``x*x``;
``quantize_row_iq4_nl_ref``, with ``ntry = -1``, is not what ``ggml_quantize_chunk`` runs).
Each 32-value block gets the scale of 16 trials; every value is mapped to the nearest of 16 fixed
levels (``kvalues_iq4nl``) by ggml's ``best_index_int8``.
"""

from __future__ import annotations

from itertools import pairwise

import torch

from .emulation import (
    GROUP_MAX_EPS,
    div,
    f32_consts,
    first_absmax,
    fp16_round,
    inverse_or_zero,
    levels,
    or_fields,
    seq_sum,
    sqrtf,
    u16_bytes,
)

KVALUES_IQ4NL = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)

# best_index_int8 picks level k-1 over k when ``x - v[k-1] < v[k] - x`` in float32.  Both sides are
# exact near the midpoint (v are small integers, so x and the differences share a grid there) and
# each side is monotonic in x, so the choice flips exactly at the midpoint, ties going up: the
# index is the number of midpoints <= x (NaN, which fails every comparison in C, gives 15).  All
# midpoints lie on the half-integer grid, so that count depends on floor(2x) only: a 512-entry
# table indexed by floor(2x) + 256 (clamped) gives index and level with one gather each, much
# cheaper than a binary search per value.
_MIDPOINTS = [(a + b) / 2 for a, b in pairwise(KVALUES_IQ4NL)]
_HALF = 256  # floor(2x) is clamped to [-256, 255]; every 2 * midpoint lies inside
_INDEX_TABLE = [sum(2 * m <= k for m in _MIDPOINTS) for k in range(-_HALF, _HALF)]
_NTRY = 7


def _table_rows(x: torch.Tensor, finite: bool) -> torch.Tensor:
    """Flat int64 row of the lookup tables for every value of ``x``.

    ``finite``: the caller guarantees no NaN (infinities are clamped either way).
    """
    t = x * 2.0  # exact
    if not finite:
        t = torch.nan_to_num_(t, nan=4.0 * _HALF)  # NaN -> above every midpoint, as in C
    return t.floor_().clamp_(-_HALF, _HALF - 1).add_(_HALF).to(torch.long).view(-1)


def best_index(x: torch.Tensor) -> torch.Tensor:
    """ggml's ``best_index_int8(16, kvalues_iq4nl, x)`` element-wise, as int64."""
    table = torch.tensor(_INDEX_TABLE, dtype=torch.long, device=x.device)
    return table.index_select(0, _table_rows(x, finite=False)).view(x.shape)


def _best_level(x: torch.Tensor) -> torch.Tensor:
    """``values[best_index_int8(...)]`` as float32 for NaN-free ``x``."""
    table = f32_consts([KVALUES_IQ4NL[i] for i in _INDEX_TABLE], x.device)
    return table.index_select(0, _table_rows(x, finite=True)).view(x.shape)


def _block_scales(xs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The per-block search of quantize_row_iq4_nl_impl on element-major [32, G] -> scale ``d`` [G]."""
    amax, mx = first_absmax(xs, 0)
    zero = amax < GROUP_MAX_EPS
    mx = torch.where(zero, torch.ones_like(mx), mx)  # keeps the discarded zero groups NaN-free
    terms = torch.empty((2,) + xs.shape, dtype=torch.float32, device=xs.device)
    al = torch.empty_like(xs)

    def sums(inv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = _best_level(torch.mul(xs, inv, out=al))
        wq = torch.mul(w, q, out=terms[1])  # w*q*x[j] evaluates (w*q)*x[j]
        torch.mul(wq, xs, out=terms[0])
        wq.mul_(q)
        acc = seq_sum(terms, dim=1)
        return acc[0], acc[1]

    sumqx, sumq2 = sums(div(1.0, div(-mx, float(KVALUES_IQ4NL[0]))))  # d = -max/values[0]; id = 1/d
    d = torch.where(sumq2 > 0, div(sumqx, sumq2), torch.zeros_like(sumqx))
    best = d * sumqx
    tries = f32_consts([float(t + KVALUES_IQ4NL[0]) for t in range(-_NTRY, _NTRY + 1)], xs.device)
    tries = tries[:, None].expand(-1, xs.shape[1]).contiguous()
    for k in range(tries.shape[0]):
        sumqx, sumq2 = sums(div(tries[k], mx))  # id = (itry + values[0])/max
        better = (sumq2 > 0) & (sumqx * sumqx > best * sumq2)
        d = torch.where(better, div(sumqx, sumq2), d)
        best = torch.where(better, d * sumqx, best)
    return torch.where(zero, torch.zeros_like(d), d)


def _weights(xs: torch.Tensor, qw: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """``weight[j] = qw[j] * sqrtf(sigma2 + xb[j]*xb[j])`` (without importance: ``xb[j]*xb[j]``)."""
    return qw * sqrtf(sigma2[None] + xs * xs)


def _nibbles(idx: torch.Tensor) -> torch.Tensor:
    """[..., 32] indices -> [..., 16] bytes: low nibble value j, high nibble value j + 16."""
    return (idx[..., :16] | (idx[..., 16:] << 4)).to(torch.uint8)


def encode_iq4_nl(x: torch.Tensor, qw: torch.Tensor | None = None) -> torch.Tensor:
    """quantize_iq4_nl: x [n, 32] (and qw [n, 32] or None) -> [n, 18] (d, qs[16])."""
    xs = x.t().contiguous()
    if qw is None:
        w = xs * xs
    else:
        sigma2 = seq_sum(xs * xs) * 0.0625  # sigma2 *= 2.f/32 (a power of two: exact as in C)
        w = _weights(xs, qw.t().contiguous(), sigma2)
    d = _block_scales(xs, w)
    d_bits, _ = fp16_round(d)
    idx = best_index(x * inverse_or_zero(d)[:, None])  # id = scales[0] ? 1/scales[0] : 0
    return torch.cat([u16_bytes(d_bits[:, None]), _nibbles(idx)], dim=1)


def encode_iq4_xs(x: torch.Tensor, qw: torch.Tensor | None = None) -> torch.Tensor:
    """quantize_iq4_xs: x [B, 256] -> [B, 136] (d, scales_h, scales_l[4], qs[128])."""
    nb = x.shape[0]
    xs = x.reshape(-1, 32).t().contiguous()  # [32, 8B]
    if qw is None:
        w = xs * xs
    else:
        xt = x.t().contiguous()
        sigma2 = seq_sum(xt * xt) * 0.0078125  # sigma2 *= 2.f/256
        w = _weights(xs, qw.reshape(-1, 32).t().contiguous(), sigma2.repeat_interleave(8))
    scales = _block_scales(xs, w).reshape(nb, 8)
    _, max_scale = first_absmax(scales.t(), 0)
    d = div(-max_scale, 32.0)
    d_bits, _ = fp16_round(d)
    ls = levels(inverse_or_zero(d)[:, None] * scales, -32, 31)  # l = nearest_int(id*scales[ib])
    dl = d[:, None] * ls
    idx = best_index(x.reshape(nb, 8, 32) * inverse_or_zero(dl)[..., None])
    l6 = ls.to(torch.int32) + 32
    scales_l = (l6[:, 0::2] & 0xF) | ((l6[:, 1::2] & 0xF) << 4)
    scales_h = or_fields(l6 >> 4, 1, 2)
    head = torch.cat([u16_bytes(torch.stack([d_bits, scales_h], dim=1)), scales_l.to(torch.uint8)], dim=1)
    return torch.cat([head, _nibbles(idx).reshape(nb, 128)], dim=1)
