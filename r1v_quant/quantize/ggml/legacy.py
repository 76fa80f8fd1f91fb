"""f16, bf16 and the legacy 32-value blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).

Without importance ggml runs ``quantize_row_<type>_ref`` (one absmax or min/max scale per block);
with importance ``quantize_row_<type>_impl``, which weights each value by
``qw[j] * sqrtf(sigma2 + x[j]^2)`` (``sigma2`` = mean square of the whole row, computed by the
caller) and searches the scale with ``make_qx_quants`` (Q4_0, Q5_0) or ``make_qkx3_quants``
(Q4_1, Q5_1).  Q8_0, f16 and bf16 have no importance variant: ggml ignores the matrix.

Every encoder takes ``x`` [n, 32] (one block per row) and returns the blocks' bytes [n, nbytes].
"""

from __future__ import annotations

import torch

from .emulation import (
    as_int8,
    bits_to_bytes,
    div,
    first_absmax,
    first_min_max,
    fp32_to_bf16_bits,
    fp32_to_fp16_bits,
    inverse_or_zero,
    roundf,
    sqrtf,
    trunc_i32,
    u16_bytes,
)
from .search import make_qkx, make_qx


def encode_f16(x: torch.Tensor) -> torch.Tensor:
    return u16_bytes(fp32_to_fp16_bits(x))


def encode_bf16(x: torch.Tensor) -> torch.Tensor:
    return u16_bytes(fp32_to_bf16_bits(x))


# --------------------------------------------------------------------------- reference (no importance)


def _q_sym(x: torch.Tensor, nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """quantize_row_q4_0_ref / q5_0_ref core: (d bytes [n, 2], quants int32 [n, 32])."""
    _, mx = first_absmax(x, 1)
    d = div(mx, -float(nmax))
    ident = inverse_or_zero(d)
    t = x * ident[:, None] + (nmax + 0.5)
    q = torch.clamp_max(as_int8(trunc_i32(t)), 2 * nmax - 1) & 0xFF  # MIN(..., (int8_t)..) -> uint8
    return u16_bytes(fp32_to_fp16_bits(d)[:, None]), q


def _q_asym(x: torch.Tensor, levels: int, clamp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """quantize_row_q4_1_ref / q5_1_ref core: (d and m bytes [n, 4], quants int32 [n, 32])."""
    mn, mx = first_min_max(x, 1)
    d = div(mx - mn, float(levels))
    ident = inverse_or_zero(d)
    t = (x - mn[:, None]) * ident[:, None] + 0.5
    v = trunc_i32(t)
    if clamp:
        q = torch.clamp_max(as_int8(v), levels) & 0xFF
    else:
        q = v & 0xFF
    head = u16_bytes(torch.stack([fp32_to_fp16_bits(d), fp32_to_fp16_bits(mn)], dim=1))
    return head, q


def _nibbles(q: torch.Tensor) -> torch.Tensor:
    """[n, 32] quants -> 16 bytes: low nibble element j, high nibble element j + 16."""
    return ((q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)).to(torch.uint8)


def _five_bit(q: torch.Tensor) -> torch.Tensor:
    """Q5 layout after the header: qh (bit j = bit 4 of element j, 4 bytes LE), then nibbles."""
    return torch.cat([bits_to_bytes((q >> 4) & 1), _nibbles(q)], dim=1)


def encode_q4_0(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_sym(x, 8)
    return torch.cat([head, ((q[:, :16] | (q[:, 16:] << 4)) & 0xFF).to(torch.uint8)], dim=1)


def encode_q5_0(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_sym(x, 16)
    return torch.cat([head, _five_bit(q)], dim=1)


def encode_q4_1(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_asym(x, 15, clamp=True)
    return torch.cat([head, ((q[:, :16] | (q[:, 16:] << 4)) & 0xFF).to(torch.uint8)], dim=1)


def encode_q5_1(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_asym(x, 31, clamp=False)
    return torch.cat([head, _five_bit(q)], dim=1)


def encode_q8_0(x: torch.Tensor) -> torch.Tensor:
    amax = x.abs().amax(dim=1)
    d = div(amax, 127.0)
    ident = inverse_or_zero(d)
    q = trunc_i32(roundf(x * ident[:, None])) & 0xFF
    return torch.cat([u16_bytes(fp32_to_fp16_bits(d)[:, None]), q.to(torch.uint8)], dim=1)


# --------------------------------------------------------------------------- with importance


def _weights(x: torch.Tensor, qw: torch.Tensor, sigma2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, weight) element-major [32, n]: ``weight[j] = qw[j] * sqrtf(sigma2 + xb[j]*xb[j])``."""
    xs = x.t().contiguous()
    return xs, qw.t().contiguous() * sqrtf(sigma2[None] + xs * xs)


def encode_q4_0_weighted(x: torch.Tensor, qw: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """quantize_row_q4_0_impl: ``d = make_qx_quants(32, 8, x, L, 1, weight)``."""
    xs, w = _weights(x, qw, sigma2)
    d, lvl = make_qx(xs, 8, w)
    q = lvl.t()
    return torch.cat([u16_bytes(fp32_to_fp16_bits(d)[:, None]), _nibbles(q)], dim=1)


def encode_q5_0_weighted(x: torch.Tensor, qw: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """quantize_row_q5_0_impl: ``d = make_qx_quants(32, 16, x, L, 1, weight)``."""
    xs, w = _weights(x, qw, sigma2)
    d, lvl = make_qx(xs, 16, w)
    return torch.cat([u16_bytes(fp32_to_fp16_bits(d)[:, None]), _five_bit(lvl.t())], dim=1)


def _q_asym_weighted(x: torch.Tensor, qw: torch.Tensor, sigma2: torch.Tensor, nmax: int):
    """quantize_row_q4_1_impl / q5_1_impl core: make_qkx3_quants(32, nmax, ..., -0.9, 0.05, 36)."""
    xs, w = _weights(x, qw, sigma2)
    d, the_min, lvl = make_qkx(xs, w, nmax, -0.9, 0.05, 36)
    head = u16_bytes(torch.stack([fp32_to_fp16_bits(d), fp32_to_fp16_bits(-the_min)], dim=1))
    return head, lvl.t()


def encode_q4_1_weighted(x: torch.Tensor, qw: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    head, q = _q_asym_weighted(x, qw, sigma2, 15)
    return torch.cat([head, _nibbles(q)], dim=1)


def encode_q5_1_weighted(x: torch.Tensor, qw: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    head, q = _q_asym_weighted(x, qw, sigma2, 31)
    return torch.cat([head, _five_bit(q)], dim=1)
