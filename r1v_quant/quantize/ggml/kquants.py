"""K-quants: super-blocks of 256 values (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), with and without importance.

Without importance ggml runs ``quantize_row_<type>_ref``; with it ``quantize_row_<type>_impl``,
whose weights are ``qw[j] * sqrtf(sigma2 + x[j]^2)`` (``sigma2`` from the super-block's sum of
squares; Q6_K uses ``qw`` as is) and whose sub-block scales are themselves quantized by a weighted
search (``make_qp_quants`` or ``make_qx_quants``) instead of a plain ``max/63``.  Every step of
a super-block is done for all super-blocks of the chunk at once: ``x`` is [B, 256] (``qw`` the
importance of each value, same shape) and the result is the bytes [B, nbytes].
"""

from __future__ import annotations

import torch

from .emulation import (
    GROUP_MAX_EPS,
    as_int8,
    div,
    first_absmax,
    fp16_round,
    levels,
    nearest_int,
    or_fields,
    pack_2bit,
    running_max,
    seq_sum,
    sqrtf,
    u16_bytes,
)
from . import native
from .search import make_q3, make_qkx, make_qp, make_qx


def _groups(t: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 256] -> element-major [size, B * 256 / size] (sub-block g of super-block b is column 256/size*b+g)."""
    return t.reshape(-1, size).t().contiguous()


def _ungroup(t: torch.Tensor, nb: int) -> torch.Tensor:
    """Element-major [size, G] -> [B, 256 / size, size]."""
    return t.t().reshape(nb, -1, t.shape[0])


def _sum_sq(x: torch.Tensor) -> torch.Tensor:
    """``for (j = 0; j < 256; ++j) sumx2 += x[j]*x[j]`` for every super-block -> [B]."""
    xt = x.t().contiguous()
    return seq_sum(xt * xt)


def _impl_weights(x: torch.Tensor, qw: torch.Tensor, size: int, sigma2: torch.Tensor):
    """(xs, weights, sw) element-major: ``qw * sqrtf(sigma2 + x*x)`` and each sub-block's sum."""
    xs = _groups(x, size)
    per = 256 // size
    s2 = sigma2.repeat_interleave(per)[None]
    w = _groups(qw, size) * sqrtf(s2 + xs * xs)
    return xs, w, seq_sum(w)


def _requant(x: torch.Tensor, d: torch.Tensor, dm: torch.Tensor | None, lo: int, hi: int, lvl: torch.Tensor):
    """Final pass of every K-quant: ``if (!d) continue; l = nearest_int((x + dm)/d)`` per sub-block.

    ``x`` [B, S, n]; ``d``, ``dm`` [B, S] (``dm`` None: ``x/d``); ``lvl`` int32 [B, S, n] kept where
    ``d`` is zero.  Returns the clamped levels minus ``lo`` (so ``0 .. hi - lo``).
    """
    num = x if dm is None else x + dm[..., None]
    new = levels(div(num, d[..., None].expand_as(x)), lo, hi).to(torch.int32) - lo
    return torch.where((d != 0)[..., None], new, lvl)


def _qp_scales_mins(scales, mins, sw, nb: int, per: int, nmax: int):
    """``make_qp_quants(per, nmax, scales, Ls, sw)`` and the same for ``mins``, as one batch of
    2B groups (same weights, independent results).  Returns (d [B], dmin [B], Ls, Lm [B, per])."""
    vals = torch.cat([scales.reshape(nb, per), mins.reshape(nb, per)]).t().contiguous()
    weights = sw.reshape(nb, per).t().repeat(1, 2)  # repeat copies: contiguous
    d, lvl = make_qp(vals, nmax, weights)
    lvl = lvl.t()
    return d[:nb], d[nb:], lvl[:nb], lvl[nb:]


# --------------------------------------------------------------------------- Q2_K


def _q2_k_bytes(x, sc, d_bits, d, dmin_bits, dmin, lvl):
    """Requantize with the stored scales and pack: scales[16], qs[64], d, dmin."""
    nb = x.shape[0]
    sub_d = d[:, None] * (sc & 0xF).to(torch.float32)
    sub_m = dmin[:, None] * (sc >> 4).to(torch.float32)
    lvl = _requant(x.reshape(nb, 16, 16), sub_d, sub_m, 0, 3, lvl)
    head = u16_bytes(torch.stack([d_bits, dmin_bits], dim=1))
    return torch.cat([sc.to(torch.uint8), pack_2bit(lvl.reshape(nb, 256)), head], dim=1)


def encode_q2_k(x: torch.Tensor) -> torch.Tensor:
    """quantize_row_q2_K_ref: make_qkx2_quants(16, 3, |x| weights, mean abs error), max/15 scales."""
    nb = x.shape[0]
    xs = _groups(x, 16)
    scales, mins, lvl = make_qkx(xs, xs.abs(), 3, -0.5, 0.1, 15, use_mad=True)
    scales, mins, lvl = scales.reshape(nb, 16), mins.reshape(nb, 16), _ungroup(lvl, nb)
    max_scale = running_max(scales)
    max_min = running_max(mins)
    has_s = max_scale > 0
    has_m = max_min > 0
    ls = nearest_int(div(15.0, max_scale)[:, None] * scales) & 0xFF
    lm = nearest_int(div(15.0, max_min)[:, None] * mins)
    sc = torch.where(has_s[:, None], ls, torch.zeros_like(ls))
    sc = torch.where(has_m[:, None], (sc | (lm << 4)) & 0xFF, sc)
    zero = torch.zeros_like(max_scale)
    d_bits, d = fp16_round(torch.where(has_s, div(max_scale, 15.0), zero))
    dmin_bits, dmin = fp16_round(torch.where(has_m, div(max_min, 15.0), zero))
    return _q2_k_bytes(x, sc, d_bits, d, dmin_bits, dmin, lvl)


def encode_q2_k_weighted(x: torch.Tensor, qw: torch.Tensor) -> torch.Tensor:
    """quantize_row_q2_K_impl: make_qkx3_quants(16, 3, ...), scales and mins by make_qp_quants(15)."""
    nb = x.shape[0]
    sigma2 = div(_sum_sq(x), 256.0)
    xs, w, sw = _impl_weights(x, qw, 16, sigma2)
    scales, mins, lvl = make_qkx(xs, w, 3, -0.9, 0.05, 36)
    dm, mm, ls, lm = _qp_scales_mins(scales, mins, sw, nb, 16, 15)
    sc = (ls | (lm << 4)) & 0xFF
    d_bits, d = fp16_round(dm)
    dmin_bits, dmin = fp16_round(mm)
    return _q2_k_bytes(x, sc, d_bits, d, dmin_bits, dmin, _ungroup(lvl, nb))


# --------------------------------------------------------------------------- Q3_K


def _q3_k_bytes(x, l6, d_bits, d, lvl):
    """Requantize with 6-bit scales ``l6`` (0..63, scale l6 - 32) and pack hmask, qs, scales, d."""
    nb = x.shape[0]
    sub_d = d[:, None] * (l6 - 32).to(torch.float32)
    lvl = _requant(x.reshape(nb, 16, 16), sub_d, None, -4, 3, lvl).reshape(nb, 8, 32)
    hmask = or_fields((lvl >> 2) & 1, 1, 1).to(torch.uint8)  # bit k of hmask[m]: L[32k + m] > 3
    low = (l6[:, :8] & 0xF) | ((l6[:, 8:] & 0xF) << 4)
    high = or_fields((l6 >> 4).reshape(nb, 4, 4), 1, 2)  # byte 8 + m: top bits of l6[m + 4k] at 2k
    scales = torch.cat([low, high], dim=1).to(torch.uint8)
    return torch.cat([hmask, pack_2bit(lvl.reshape(nb, 256) & 3), scales, u16_bytes(d_bits[:, None])], dim=1)


def encode_q3_k(x: torch.Tensor) -> torch.Tensor:
    """quantize_row_q3_K_ref: make_q3_quants(16, 4, rmse) per sub-block, scales at -32/max."""
    nb = x.shape[0]
    scales, lvl = make_q3(_groups(x, 16), 4)
    _, max_scale = first_absmax(scales.reshape(nb, 16).t(), 0)
    has = max_scale != 0
    iscale = div(-32.0, max_scale)
    l6 = as_int8(nearest_int(iscale[:, None] * scales.reshape(nb, 16))).clamp_(-32, 31) + 32
    l6 = torch.where(has[:, None], l6, torch.zeros_like(l6))
    d_bits, d = fp16_round(torch.where(has, div(1.0, iscale), torch.zeros_like(iscale)))
    return _q3_k_bytes(x, l6, d_bits, d, _ungroup(lvl, nb))


def encode_q3_k_weighted(x: torch.Tensor, qw: torch.Tensor) -> torch.Tensor:
    """quantize_row_q3_K_impl: make_qx_quants(16, 4, weights), scales by make_qx_quants(16, 32, sw)."""
    nb = x.shape[0]
    sigma2 = div(2 * _sum_sq(x), 256.0)
    xs, w, sw = _impl_weights(x, qw, 16, sigma2)
    scales, lvl = make_qx(xs, 4, w)
    d_block, ls = make_qx(scales.reshape(nb, 16).t().contiguous(), 32, sw.reshape(nb, 16).t().contiguous())
    d_bits, d = fp16_round(d_block)
    return _q3_k_bytes(x, ls.t().contiguous(), d_bits, d, _ungroup(lvl, nb))


# --------------------------------------------------------------------------- Q4_K, Q5_K


def _k4_scale_bytes(ls: torch.Tensor, lm: torch.Tensor):
    """The 12 packed bytes of 8 scales and mins (C stores them in uint8_t: values may exceed 63),
    and the (sc, m) that ``get_scale_min_k4`` reads back."""
    lo = torch.cat([ls[:, :4], lm[:, :4]], dim=1)
    hi = torch.cat([ls[:, 4:] >> 4, lm[:, 4:] >> 4], dim=1) << 6
    packed = torch.cat([(lo | hi) & 0xFF, (ls[:, 4:] & 0xF) | ((lm[:, 4:] & 0xF) << 4)], dim=1)
    sc = torch.cat([packed[:, :4] & 63, (packed[:, 8:] & 0xF) | ((packed[:, :4] >> 6) << 4)], dim=1)
    m = torch.cat([packed[:, 4:8] & 63, (packed[:, 8:] >> 4) | ((packed[:, 4:8] >> 6) << 4)], dim=1)
    return packed, sc, m


def _k4_head(x, ls, lm, d_bits, d, dmin_bits, dmin, lvl, nmax):
    """Header (d, dmin, 12 scale bytes) and the requantized levels [B, 8, 32]."""
    packed, sc, m = _k4_scale_bytes(ls, lm)
    sub_d = d[:, None] * sc.to(torch.float32)
    sub_m = dmin[:, None] * m.to(torch.float32)
    lvl = _requant(x.reshape(-1, 8, 32), sub_d, sub_m, 0, nmax, lvl)
    head = torch.cat([u16_bytes(torch.stack([d_bits, dmin_bits], dim=1)), packed.to(torch.uint8)], dim=1)
    return head, lvl


def _k_ref(x: torch.Tensor, nmax: int, rmin: float, nstep: int):
    """quantize_row_q4_K_ref / q5_K_ref front end: make_qkx2_quants per 32, max/63 scales.
    Returns (ls, lm, d_bits, d, dmin_bits, dmin, levels element-major [32, nb * 8])."""
    nb = x.shape[0]
    xs = _groups(x, 32)
    sum_x2 = seq_sum(xs * xs)
    av_x = sqrtf(div(sum_x2, 32.0))
    w = av_x[None] + xs.abs()
    scales, mins, lvl = make_qkx(xs, w, nmax, rmin, 0.1, nstep)
    scales, mins = scales.reshape(nb, 8), mins.reshape(nb, 8)
    max_scale = running_max(scales)
    max_min = running_max(mins)
    inv_scale = torch.where(max_scale > 0, div(63.0, max_scale), torch.zeros_like(max_scale))
    inv_min = torch.where(max_min > 0, div(63.0, max_min), torch.zeros_like(max_min))
    ls = torch.clamp_max(nearest_int(inv_scale[:, None] * scales) & 0xFF, 63)
    lm = torch.clamp_max(nearest_int(inv_min[:, None] * mins) & 0xFF, 63)
    d_bits, d = fp16_round(div(max_scale, 63.0))
    dmin_bits, dmin = fp16_round(div(max_min, 63.0))
    return ls, lm, d_bits, d, dmin_bits, dmin, lvl


def _k_impl(x: torch.Tensor, qw: torch.Tensor, nmax: int, clamp63: bool):
    """quantize_row_q4_K_impl / q5_K_impl front end: make_qkx3_quants, make_qp_quants(63).
    Returns what :func:`_k_ref` returns."""
    nb = x.shape[0]
    sigma2 = div(2 * _sum_sq(x), 256.0)
    xs, w, sw = _impl_weights(x, qw, 32, sigma2)
    scales, mins, lvl = make_qkx(xs, w, nmax, -0.9, 0.05, 36)
    d_block, m_block, ls, lm = _qp_scales_mins(scales, mins, sw, nb, 8, 63)
    if clamp63:  # Q5_K only: MIN(63, ls)
        ls, lm = ls.clamp_max(63), lm.clamp_max(63)
    d_bits, d = fp16_round(d_block)
    dmin_bits, dmin = fp16_round(m_block)
    return ls, lm, d_bits, d, dmin_bits, dmin, lvl


def _q4_k_bytes(head: torch.Tensor, lvl: torch.Tensor) -> torch.Tensor:
    pairs = lvl.reshape(-1, 4, 2, 32)  # 64-value chunks: low nibbles first 32, high nibbles next 32
    qs = (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(-1, 128).to(torch.uint8)
    return torch.cat([head, qs], dim=1)


def _q5_k_bytes(head: torch.Tensor, lvl: torch.Tensor) -> torch.Tensor:
    lv = lvl.reshape(-1, 8, 32)  # sub-block k = 2c + h sets bit k of qh[j]
    qh = or_fields((lv >> 4) & 1, 1, 1).to(torch.uint8)  # [B, 32]
    pairs = (lv & 0x0F).reshape(-1, 4, 2, 32)
    qs = (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(-1, 128).to(torch.uint8)
    return torch.cat([head, qh, qs], dim=1)


def _q4_k(x: torch.Tensor, found: tuple) -> torch.Tensor:
    """Q4_K blocks from the front end's (ls, lm, d_bits, d, dmin_bits, dmin, levels): in C on a CPU."""
    ls, lm, d_bits, d, dmin_bits, dmin, lvl = found
    if native.usable_blocks(x):
        return native.q4_k_finish(x, ls, lm, d_bits, dmin_bits, lvl)
    return _q4_k_bytes(*_k4_head(x, ls, lm, d_bits, d, dmin_bits, dmin, _ungroup(lvl, x.shape[0]), 15))


def _q5_k(x: torch.Tensor, found: tuple) -> torch.Tensor:
    ls, lm, d_bits, d, dmin_bits, dmin, lvl = found
    return _q5_k_bytes(*_k4_head(x, ls, lm, d_bits, d, dmin_bits, dmin, _ungroup(lvl, x.shape[0]), 31))


def encode_q4_k(x: torch.Tensor) -> torch.Tensor:
    return _q4_k(x, _k_ref(x, 15, -1.0, 20))


def encode_q5_k(x: torch.Tensor) -> torch.Tensor:
    return _q5_k(x, _k_ref(x, 31, -0.5, 15))


def encode_q4_k_weighted(x: torch.Tensor, qw: torch.Tensor) -> torch.Tensor:
    return _q4_k(x, _k_impl(x, qw, 15, clamp63=False))


def encode_q5_k_weighted(x: torch.Tensor, qw: torch.Tensor) -> torch.Tensor:
    return _q5_k(x, _k_impl(x, qw, 31, clamp63=True))


# --------------------------------------------------------------------------- Q6_K


def _encode_q6_k(x: torch.Tensor, qw: torch.Tensor | None) -> torch.Tensor:
    """quantize_row_q6_K_ref / _impl: make_qx_quants(16, 32, x*x or qw), int8 scales at -128/max."""
    nb = x.shape[0]
    scales, lvl = make_qx(_groups(x, 16), 32, None if qw is None else _groups(qw, 16))
    if native.usable_blocks(x):
        return native.q6_k_finish(x, scales, lvl)
    scales = scales.reshape(nb, 16)
    lvl = _ungroup(lvl, nb)
    max_abs, max_scale = first_absmax(scales.t(), 0)
    empty = max_abs < GROUP_MAX_EPS

    iscale = div(-128.0, max_scale)
    d_bits, d = fp16_round(div(1.0, iscale))
    sc = as_int8(torch.clamp_max(nearest_int(iscale[:, None] * scales), 127))  # int8_t scales
    sub_d = d[:, None] * sc.to(torch.float32)
    lvl = _requant(x.reshape(nb, 16, 16), sub_d, None, -32, 31, lvl)
    lvl = lvl.reshape(nb, 2, 4, 32)  # [block, 128-half, 32-row quarter, l]

    ql = torch.cat(
        [
            (lvl[:, :, 0] & 0x0F) | ((lvl[:, :, 2] & 0x0F) << 4),
            (lvl[:, :, 1] & 0x0F) | ((lvl[:, :, 3] & 0x0F) << 4),
        ],
        dim=2,
    ).reshape(nb, 128)
    qh = or_fields((lvl >> 4) & 3, 2, 2).reshape(nb, 64)
    parts = [ql, qh, sc & 0xFF]  # ql[128], qh[64], int8 scales[16], then d
    out = torch.cat([p.to(torch.uint8) for p in parts] + [u16_bytes(d_bits[:, None])], dim=1)
    return torch.where(empty[:, None], torch.zeros_like(out), out)


def encode_q6_k(x: torch.Tensor) -> torch.Tensor:
    return _encode_q6_k(x, None)


def encode_q6_k_weighted(x: torch.Tensor, qw: torch.Tensor) -> torch.Tensor:
    return _encode_q6_k(x, qw)
