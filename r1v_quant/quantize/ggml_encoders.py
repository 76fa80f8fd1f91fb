"""GGML block encoders in torch, byte for byte what llama.cpp's reference quantizers write.

``quantize(data, qtype)`` turns a 2-D float32 tensor ``[rows, n_per_row]`` into the bytes that
``ggml_quantize_chunk(type, src, dst, 0, rows, n_per_row, NULL)`` gives (no importance matrix),
for ``f16``, ``bf16``, ``q4_0``, ``q4_1``, ``q5_0``, ``q5_1``, ``q8_0``, ``q4_k``, ``q5_k`` and
``q6_k``.  All blocks of a chunk are encoded at once; the work is plain element-wise torch, so it
runs wherever the tensor lives (CPU or CUDA).

Bit-exactness rests on doing the same float32 operations in the same order as the C code:

* every ``a / b`` is a tensor-by-tensor division (CUDA turns division by a Python number into
  a multiplication by its reciprocal, which can round differently);
* running sums (``s += ...``) are accumulated one element at a time, in element order, vectorized
  across blocks only, because float addition is not associative;
* "keep the first strict maximum" searches use ``argmax`` (first index) or explicit loops;
* ggml's ``nearest_int`` (add 1.5 * 2**23, read the mantissa bits) and C's float-to-int
  truncation are emulated with their out-of-range and NaN results, since intermediate
  infinities do occur for extreme inputs (e.g. an f16 scale that overflowed);
* ``sqrtf`` goes through float64 (torch's float32 CPU ``sqrt`` is not correctly rounded);
* f16 values are produced by IEEE round-to-nearest-even conversion, which is what ggml's
  portable ``GGML_FP32_TO_FP16`` computes.
"""

from __future__ import annotations

import gguf
import numpy as np
import torch

from ..errors import InputError

__all__ = ["GGML_BLOCKS", "QTYPES", "quantize", "row_nbytes", "fp32_to_fp16_bits", "fp32_to_bf16_bits"]

QTYPES = ("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k")

# qtype -> (elements per block, bytes per block), straight from gguf-py's table.
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    q: tuple(gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[q.upper()]]) for q in QTYPES
}

# Input elements encoded per step.  It bounds the temporaries (the K-quant search holds ~10
# floats per input element, the legacy types a handful); on CPU a chunk that stays near the
# caches is fastest, on a GPU a big one amortizes the kernel launches of the sequential loops.
_CHUNK_ELEMENTS = {"q4_k": 1 << 18, "q5_k": 1 << 18, "q6_k": 1 << 18}
_DEFAULT_CHUNK_ELEMENTS = 1 << 21
_GPU_CHUNK_ELEMENTS = 1 << 23

_MAGIC_ROUND = 12582912.0  # 1.5 * 2**23: adding it leaves round-to-nearest-even(x) in the mantissa


def row_nbytes(qtype: str, n_per_row: int) -> int:
    """Bytes of one encoded row of ``n_per_row`` values."""
    block, nbytes = GGML_BLOCKS[qtype]
    return n_per_row // block * nbytes


# --------------------------------------------------------------------------- scalar emulation


def _full(like: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full_like(like, value, dtype=torch.float32)


def _div(a: torch.Tensor | float, b: torch.Tensor | float) -> torch.Tensor:
    """IEEE float32 ``a / b`` with both operands as tensors (see the module notes)."""
    if not isinstance(a, torch.Tensor):
        a = _full(b, a)
    if not isinstance(b, torch.Tensor):
        b = _full(a, b)
    return torch.div(a, b)


def _nearest_int(f: torch.Tensor) -> torch.Tensor:
    """ggml's ``nearest_int``: round half to even via the 1.5 * 2**23 trick, as int32.

    Outside +-2**22 the trick wraps, an infinity gives -2**22 and a NaN gives 0 (the x86
    default NaN has an all-zero payload below the quiet bit); all reproduced here.
    """
    r = (f + _MAGIC_ROUND).view(torch.int32).bitwise_and_(0x007FFFFF).sub_(0x00400000)
    if f.device.type == "cpu":  # the x86 default NaN already lands on 0
        return r
    return torch.where(torch.isnan(f), torch.zeros_like(r), r)


def _levels(f: torch.Tensor, lo: int, hi: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``MAX(lo, MIN(hi, nearest_int(f)))`` as float32 (exact small integers).

    With ``out`` given, ``f`` is a scratch tensor and is overwritten.
    """
    nan = None if f.device.type == "cpu" else torch.isnan(f)  # see _nearest_int
    if out is None:
        f = f + _MAGIC_ROUND
        out = torch.empty_like(f)
    else:
        f = f.add_(_MAGIC_ROUND)
    bits = f.view(torch.int32).bitwise_and_(0x007FFFFF)
    if nan is not None:
        bits.masked_fill_(nan, 0x00400000)
    bits.clamp_(lo + 0x00400000, hi + 0x00400000)
    out.copy_(bits)
    return out.sub_(float(0x00400000))


def _trunc_i32(t: torch.Tensor) -> torch.Tensor:
    """C float -> int conversion as x86 does it: truncate, 0x80000000 when out of range or NaN."""
    ok = (t >= -2147483648.0) & (t < 2147483648.0)
    v = torch.where(ok, t, torch.zeros_like(t)).trunc().to(torch.int32)
    return torch.where(ok, v, torch.full_like(v, -(2**31)))


def _sqrtf(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 square root (C ``sqrtf``).

    torch's float32 ``sqrt`` on CPU is not correctly rounded (one ulp off for ~17% of random
    float32 bit patterns, measured with torch 2.13); the float64 root
    rounded to float32 is exact (a float32 square root is never close enough to a midpoint for
    the double rounding to matter).
    """
    return torch.sqrt(x.to(torch.float64)).to(torch.float32)


def _as_int8(v: torch.Tensor) -> torch.Tensor:
    """Value of an int stored into an ``int8_t`` (low byte, sign-extended)."""
    return ((v & 0xFF) ^ 0x80) - 0x80


def _roundf(x: torch.Tensor) -> torch.Tensor:
    """C ``roundf``: halves away from zero."""
    t = torch.trunc(x)
    frac = x - t  # exact
    return torch.where(frac.abs() >= 0.5, t + torch.sign(x), t)


def fp32_to_fp16_bits(x: torch.Tensor) -> torch.Tensor:
    """float32 -> IEEE half bits (int32 in 0..65535) as ggml computes them; NaN -> 0x7E00 | sign."""
    x = x.to(torch.float32)
    h = x.to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF
    sign = (x.view(torch.int32) >> 16) & 0x8000
    return torch.where(torch.isnan(x), sign | 0x7E00, h)


def _fp16_bits_to_fp32(h: torch.Tensor) -> torch.Tensor:
    return h.to(torch.int16).view(torch.float16).to(torch.float32)


def _fp16_round(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(half bits, the half value back as float32)."""
    h = fp32_to_fp16_bits(x)
    return h, _fp16_bits_to_fp32(h)


def fp32_to_bf16_bits(x: torch.Tensor) -> torch.Tensor:
    """float32 -> bfloat16 bits (int32 in 0..65535): round to nearest even, NaN made quiet."""
    u = x.to(torch.float32).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return torch.where(nan, (u >> 16) | 64, rounded).to(torch.int32) & 0xFFFF


def _u16_bytes(h: torch.Tensor) -> torch.Tensor:
    """[..., k] int values < 2**16 -> [..., 2k] little-endian uint8."""
    return torch.stack([h & 0xFF, (h >> 8) & 0xFF], dim=-1).flatten(-2).to(torch.uint8)


def _bits_to_bytes(bits: torch.Tensor) -> torch.Tensor:
    """[..., 8k] of 0/1 (element order = bit order, LSB first) -> [..., k] uint8."""
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.int32, device=bits.device)
    b = bits.to(torch.int32).unflatten(-1, (-1, 8))
    return (b * weights).sum(-1).to(torch.uint8)


def _seq_sum(terms: torch.Tensor, start_from_zero: bool = True, dim: int = 0) -> torch.Tensor:
    """Left-to-right float32 sum over ``dim``, as ``for (i...) s += t[i]`` does it."""
    if start_from_zero:
        acc = torch.zeros_like(terms.select(dim, 0))
        first = 0
    else:
        acc = terms.select(dim, 0).clone()
        first = 1
    for i in range(first, terms.shape[dim]):
        acc.add_(terms.select(dim, i))
    return acc


def _first_absmax(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(amax, signed value) of the first element of largest magnitude; (0, +0.0) if all zero."""
    if dim == 0:  # element-major groups: the C loop itself, vectorized across groups
        amax = torch.zeros_like(x[0])
        v = torch.zeros_like(x[0])
        for i in range(x.shape[0]):
            a = x[i].abs()
            better = a > amax
            amax = torch.where(better, a, amax)
            v = torch.where(better, x[i], v)
        return amax, v
    ax = x.abs()
    idx = ax.argmax(dim=dim, keepdim=True)  # first index of the largest
    amax = ax.gather(dim, idx).squeeze(dim)
    v = x.gather(dim, idx).squeeze(dim)
    return amax, torch.where(amax > 0, v, torch.zeros_like(v))


def _first_min_max(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max keeping the first of equal candidates (matters only for the sign of a zero)."""
    if dim == 0:
        mn = x[0].clone()
        mx = x[0].clone()
        for i in range(1, x.shape[0]):
            mn = torch.where(x[i] < mn, x[i], mn)
            mx = torch.where(x[i] > mx, x[i], mx)
        return mn, mx
    mn = x.gather(dim, x.argmin(dim=dim, keepdim=True)).squeeze(dim)
    mx = x.gather(dim, x.argmax(dim=dim, keepdim=True)).squeeze(dim)
    return mn, mx


def _inverse_or_zero(d: torch.Tensor) -> torch.Tensor:
    """``d ? 1.0f/d : 0.0f``."""
    return torch.where(d != 0, _div(1.0, d), torch.zeros_like(d))


# --------------------------------------------------------------------------- legacy blocks


def _q_sym(x: torch.Tensor, nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_0 / Q5_0 core: (d bits [n,1] as bytes [n,2], quants int32 [n,32])."""
    _, mx = _first_absmax(x, 1)
    d = _div(mx, -float(nmax))
    ident = _inverse_or_zero(d)
    t = x * ident[:, None] + (nmax + 0.5)
    q = torch.clamp_max(_as_int8(_trunc_i32(t)), 2 * nmax - 1) & 0xFF  # MIN(..., (int8_t)..) -> uint8
    return _u16_bytes(fp32_to_fp16_bits(d)[:, None]), q


def _q_asym(x: torch.Tensor, levels: int, clamp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_1 / Q5_1 core: (d and m bytes [n,4], quants int32 [n,32])."""
    mn, mx = _first_min_max(x, 1)
    d = _div(mx - mn, float(levels))
    ident = _inverse_or_zero(d)
    t = (x - mn[:, None]) * ident[:, None] + 0.5
    v = _trunc_i32(t)
    if clamp:
        q = torch.clamp_max(_as_int8(v), levels) & 0xFF
    else:
        q = v & 0xFF
    head = _u16_bytes(torch.stack([fp32_to_fp16_bits(d), fp32_to_fp16_bits(mn)], dim=1))
    return head, q


def _nibbles(q: torch.Tensor) -> torch.Tensor:
    """[n, 32] quants -> 16 bytes: low nibble element j, high nibble element j + 16."""
    return ((q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)).to(torch.uint8)


def _encode_q4_0(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_sym(x, 8)
    return torch.cat([head, ((q[:, :16] | (q[:, 16:] << 4)) & 0xFF).to(torch.uint8)], dim=1)


def _encode_q5_0(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_sym(x, 16)
    return torch.cat([head, _bits_to_bytes((q >> 4) & 1), _nibbles(q)], dim=1)


def _encode_q4_1(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_asym(x, 15, clamp=True)
    return torch.cat([head, ((q[:, :16] | (q[:, 16:] << 4)) & 0xFF).to(torch.uint8)], dim=1)


def _encode_q5_1(x: torch.Tensor) -> torch.Tensor:
    head, q = _q_asym(x, 31, clamp=False)
    return torch.cat([head, _bits_to_bytes((q >> 4) & 1), _nibbles(q)], dim=1)


def _encode_q8_0(x: torch.Tensor) -> torch.Tensor:
    amax = x.abs().amax(dim=1)
    d = _div(amax, 127.0)
    ident = _inverse_or_zero(d)
    q = _trunc_i32(_roundf(x * ident[:, None])) & 0xFF
    return torch.cat([_u16_bytes(fp32_to_fp16_bits(d)[:, None]), q.to(torch.uint8)], dim=1)


# --------------------------------------------------------------------------- K-quants


def _f32_consts(values: list[float], device: torch.device) -> torch.Tensor:
    return torch.tensor(np.array(values, dtype=np.float32), device=device)


def _make_qkx2(
    x: torch.Tensor, w: torch.Tensor, nmax: int, rmin: float, rdelta: float, nstep: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ggml's ``make_qkx2_quants`` (squared error) for every group at once.

    ``x``, ``w``: [n, G] values and weights, element-major (one group per column).
    Returns (scale [G], the_min [G], L int32 [n, G]).
    """
    mn, mx = _first_min_max(x, 0)
    sums = _seq_sum(torch.stack([w, w * x], dim=1), start_from_zero=False)
    sum_w, sum_x = sums[0], sums[1]
    mn = torch.where(mn > 0, torch.zeros_like(mn), mn)
    flat = mx == mn

    iscale = _div(float(nmax), mx - mn)
    scale = _div(1.0, iscale)
    lvl = _levels(iscale * (x - mn), 0, nmax)
    diff = scale * lvl + mn - x
    best_error = _seq_sum(w * (diff * diff))

    # The search is sequential: a winning trial replaces ``min`` and later trials scale from the
    # new one, so trials run one after another (each over all groups at once).  Only the winning
    # trial's (iscale, min) are kept; its levels are recomputed at the end.
    f32 = np.float32
    steps = [f32(f32(f32(rmin) + f32(rdelta) * f32(i)) + f32(nmax)) for i in range(nstep + 1)]
    consts = _f32_consts(steps, x.device)[:, None].expand(-1, x.shape[1]).contiguous()  # [S, G]
    best_iscale, best_from = iscale, mn
    cur_min = mn
    # Scratch tensors are allocated once: fresh large CPU tensors cost page faults every time.
    terms = torch.empty((3,) + x.shape, dtype=torch.float32, device=x.device)
    t = torch.empty_like(x)
    laux = torch.empty_like(x)
    for s in range(nstep + 1):
        iscale = _div(consts[s], mx - cur_min)
        _levels(torch.sub(x, cur_min, out=t).mul_(iscale), 0, nmax, out=laux)
        wl = torch.mul(w, laux, out=terms[0])
        torch.mul(wl, laux, out=terms[1])
        torch.mul(wl, x, out=terms[2])
        acc = _seq_sum(terms, dim=1)  # [3, G]
        sum_l, sum_l2, sum_xl = acc[0], acc[1], acc[2]
        big_d = sum_w * sum_l2 - sum_l * sum_l
        this_scale = _div(sum_w * sum_xl - sum_x * sum_l, big_d)
        this_min = _div(sum_l2 * sum_x - sum_l * sum_xl, big_d)
        pos = this_min > 0
        this_min = torch.where(pos, torch.zeros_like(this_min), this_min)
        this_scale = torch.where(pos, _div(sum_xl, sum_l2), this_scale)
        diff = laux.mul_(this_scale).add_(this_min).sub_(x)  # laux is recomputed next trial
        cur_error = _seq_sum(diff.mul_(diff).mul_(w))
        better = (big_d > 0) & (cur_error < best_error)
        best_error = torch.where(better, cur_error, best_error)
        scale = torch.where(better, this_scale, scale)
        best_iscale = torch.where(better, iscale, best_iscale)
        best_from = torch.where(better, cur_min, best_from)
        cur_min = torch.where(better, this_min, cur_min)

    lvl = _levels(best_iscale * (x - best_from), 0, nmax).to(torch.int32)
    scale = torch.where(flat, torch.zeros_like(scale), scale)
    cur_min = torch.where(flat, mn, cur_min)
    lvl = torch.where(flat[None], torch.zeros_like(lvl), lvl)
    return scale, -cur_min, lvl


def _running_max(v: torch.Tensor) -> torch.Tensor:
    """``m = 0; for j: if (v[j] > m) m = v[j]`` over dim 1 (NaN never wins)."""
    m = torch.zeros_like(v[:, 0])
    for j in range(v.shape[1]):
        m = torch.where(v[:, j] > m, v[:, j], m)
    return m


def _k_scales_mins(
    x: torch.Tensor, nmax: int, rmin: float, nstep: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared Q4_K/Q5_K front end for super-blocks ``x`` [B, 256].

    Returns (header bytes [B, 16]: d, dmin, 12 packed scale bytes; quants int32 [B, 8, 32]).
    """
    nb = x.shape[0]
    xs = x.reshape(nb * 8, 32).t().contiguous()  # [32, G] element-major
    sum_x2 = _seq_sum(xs * xs)
    av_x = _sqrtf(_div(sum_x2, 32.0))
    w = av_x[None] + xs.abs()
    scales, mins, lvl = _make_qkx2(xs, w, nmax, rmin, 0.1, nstep)
    scales = scales.reshape(nb, 8)
    mins = mins.reshape(nb, 8)
    lvl = lvl.t().reshape(nb, 8, 32)

    max_scale = _running_max(scales)
    max_min = _running_max(mins)
    inv_scale = torch.where(max_scale > 0, _div(63.0, max_scale), torch.zeros_like(max_scale))
    inv_min = torch.where(max_min > 0, _div(63.0, max_min), torch.zeros_like(max_min))
    ls = torch.clamp_max(_nearest_int(inv_scale[:, None] * scales) & 0xFF, 63)
    lm = torch.clamp_max(_nearest_int(inv_min[:, None] * mins) & 0xFF, 63)
    d_bits, d = _fp16_round(_div(max_scale, 63.0))
    dmin_bits, dmin = _fp16_round(_div(max_min, 63.0))

    sub_d = d[:, None] * ls.to(torch.float32)
    sub_m = dmin[:, None] * lm.to(torch.float32)
    xb = x.reshape(nb, 8, 32)
    ratio = _div(xb + sub_m[..., None], sub_d[..., None].expand_as(xb))
    requant = torch.clamp(_nearest_int(ratio), 0, nmax)
    lvl = torch.where((sub_d != 0)[..., None], requant, lvl)

    packed = torch.cat(
        [
            ls[:, :4] | ((ls[:, 4:] >> 4) << 6),
            lm[:, :4] | ((lm[:, 4:] >> 4) << 6),
            (ls[:, 4:] & 0x0F) | ((lm[:, 4:] & 0x0F) << 4),
        ],
        dim=1,
    ).to(torch.uint8)
    head = torch.cat([_u16_bytes(torch.stack([d_bits, dmin_bits], dim=1)), packed], dim=1)
    return head, lvl


def _encode_q4_k(x: torch.Tensor) -> torch.Tensor:
    head, lvl = _k_scales_mins(x, 15, -1.0, 20)
    pairs = lvl.reshape(-1, 4, 2, 32)  # 64-element chunks: low nibbles first 32, high nibbles next 32
    qs = (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(-1, 128).to(torch.uint8)
    return torch.cat([head, qs], dim=1)


def _encode_q5_k(x: torch.Tensor) -> torch.Tensor:
    head, lvl = _k_scales_mins(x, 31, -0.5, 15)
    lv = lvl.reshape(-1, 8, 32)  # sub-block k = 2c + h sets bit k of qh[j]
    high = (lv >> 4) & 1
    shifts = torch.arange(8, device=x.device, dtype=torch.int32)[None, :, None]
    qh = (high << shifts).sum(1).to(torch.uint8)  # [B, 32]
    pairs = (lv & 0x0F).reshape(-1, 4, 2, 32)
    qs = (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(-1, 128).to(torch.uint8)
    return torch.cat([head, qh, qs], dim=1)


def _make_qx_rmse1(x: torch.Tensor, nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ggml's ``make_qx_quants(n, nmax, x, L, rmse_type=1, NULL)`` for every group at once.

    ``x``: [n, G] element-major.  Returns (scale [G], L int32 [n, G] in 0 .. 2*nmax-1).
    """
    amax, mx = _first_absmax(x, 0)
    zero = amax < 1e-15
    f32 = np.float32
    cands = [f32(-nmax)] + [-(f32(nmax) + f32(0.1) * f32(i)) for i in range(-9, 10) if i != 0]
    consts = _f32_consts(cands, x.device)[:, None].expand(-1, x.shape[1]).contiguous()  # [C, G]
    # amax >= 1e-15 bounds |iscale * x| by ~nmax + 1, so rounding needs no out-of-range care
    # (groups below it are overwritten with zeros at the end).
    w = x * x
    wx = w * x
    terms = torch.empty((2,) + x.shape, dtype=torch.float32, device=x.device)
    lf = torch.empty_like(x)
    scale = best = best_iscale = None
    for c in range(len(cands)):
        iscale = _div(consts[c], mx)
        torch.mul(x, iscale, out=lf).round_().clamp_(-nmax, nmax - 1)
        torch.mul(wx, lf, out=terms[0])
        torch.mul(w, lf, out=terms[1]).mul_(lf)
        acc = _seq_sum(terms, dim=1)
        sumlx, suml2 = acc[0], acc[1]
        if c == 0:
            scale = torch.where(suml2 != 0, _div(sumlx, suml2), torch.zeros_like(sumlx))
            best = scale * sumlx
            best_iscale = iscale
            continue
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        scale = torch.where(better, _div(sumlx, suml2), scale)
        best = torch.where(better, scale * sumlx, best)
        best_iscale = torch.where(better, iscale, best_iscale)
    picked = torch.round(best_iscale * x).clamp_(-nmax, nmax - 1).to(torch.int32) + nmax
    scale = torch.where(zero, torch.zeros_like(scale), scale)
    picked = torch.where(zero[None], torch.zeros_like(picked), picked)
    return scale, picked


def _encode_q6_k(x: torch.Tensor) -> torch.Tensor:
    nb = x.shape[0]
    xs = x.reshape(nb * 16, 16).t().contiguous()
    scales, lvl = _make_qx_rmse1(xs, 32)
    scales = scales.reshape(nb, 16)
    lvl = lvl.t().reshape(nb, 16, 16)

    max_abs = torch.zeros_like(scales[:, 0])
    max_scale = torch.zeros_like(scales[:, 0])
    for j in range(16):
        a = scales[:, j].abs()
        better = a > max_abs
        max_abs = torch.where(better, a, max_abs)
        max_scale = torch.where(better, scales[:, j], max_scale)
    empty = max_abs < 1e-15

    iscale = _div(-128.0, max_scale)
    d_bits, d = _fp16_round(_div(1.0, iscale))
    sc = _as_int8(torch.clamp_max(_nearest_int(iscale[:, None] * scales), 127))  # int8_t scales
    sub_d = d[:, None] * sc.to(torch.float32)
    xb = x.reshape(nb, 16, 16)
    requant = torch.clamp(_nearest_int(_div(xb, sub_d[..., None].expand_as(xb))), -32, 31) + 32
    lvl = torch.where((sub_d != 0)[..., None], requant, lvl)
    lvl = lvl.reshape(nb, 2, 4, 32)  # [block, 128-half, 32-row quarter, l]

    ql = torch.cat(
        [
            (lvl[:, :, 0] & 0x0F) | ((lvl[:, :, 2] & 0x0F) << 4),
            (lvl[:, :, 1] & 0x0F) | ((lvl[:, :, 3] & 0x0F) << 4),
        ],
        dim=2,
    ).reshape(nb, 128)
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.int32, device=x.device)[None, None, :, None]
    qh = (((lvl >> 4) & 3) << shifts).sum(2).reshape(nb, 64)
    parts = [ql, qh, sc & 0xFF]  # ql[128], qh[64], int8 scales[16], then d
    out = torch.cat([p.to(torch.uint8) for p in parts] + [_u16_bytes(d_bits[:, None])], dim=1)
    return torch.where(empty[:, None], torch.zeros_like(out), out)


def _encode_f16(x: torch.Tensor) -> torch.Tensor:
    return _u16_bytes(fp32_to_fp16_bits(x))


def _encode_bf16(x: torch.Tensor) -> torch.Tensor:
    return _u16_bytes(fp32_to_bf16_bits(x))


_ENCODERS = {
    "f16": _encode_f16,
    "bf16": _encode_bf16,
    "q4_0": _encode_q4_0,
    "q4_1": _encode_q4_1,
    "q5_0": _encode_q5_0,
    "q5_1": _encode_q5_1,
    "q8_0": _encode_q8_0,
    "q4_k": _encode_q4_k,
    "q5_k": _encode_q5_k,
    "q6_k": _encode_q6_k,
}


# --------------------------------------------------------------------------- entry point


def quantize(data: torch.Tensor, qtype: str, name: str | None = None) -> torch.Tensor:
    """Encode ``data`` [rows, n_per_row] (or 1-D, one row) as GGML ``qtype`` blocks.

    Returns a flat ``torch.uint8`` tensor on ``data``'s device, ``rows * row_nbytes(qtype,
    n_per_row)`` long, equal byte for byte to ``ggml_quantize_chunk`` without an importance
    matrix.  Raises :class:`InputError` (naming ``name``) for a NaN or infinity, or a row length
    that is not a whole number of blocks.  Non-float32 input is converted to float32 first.

    On CPU the work is a few thousand medium-sized element-wise ops per chunk.  With several
    torch intra-op threads on a machine whose cores are busy, each parallel region can stall on
    a descheduled thread (measured: 6-20x slower with 2 threads on a loaded 2-core box), so a
    caller encoding on a shared CPU may prefer ``torch.set_num_threads(1)`` and parallelism
    across tensors instead.
    """
    qtype = qtype.lower()
    if qtype not in _ENCODERS:
        raise ValueError(f"unknown GGML type {qtype!r}; expected one of {', '.join(QTYPES)}")
    where = f"tensor '{name}': " if name else ""
    if data.dim() == 1:
        data = data[None]
    if data.dim() != 2:
        raise InputError(
            f"{where}expected a 2-D tensor to encode as {qtype}, got shape {tuple(data.shape)}"
        )
    if not data.is_floating_point():
        raise InputError(f"{where}expected a float tensor to encode as {qtype}, got {data.dtype}")
    rows, n_per_row = data.shape
    block, nbytes = GGML_BLOCKS[qtype]
    if n_per_row % block:
        raise InputError(
            f"{where}row length {n_per_row} is not a multiple of the {qtype} block size {block}"
        )
    nblocks = rows * n_per_row // block
    out = torch.empty(nblocks * nbytes, dtype=torch.uint8, device=data.device)
    encode = _ENCODERS[qtype]
    if data.device.type == "cpu":
        step = max(1, _CHUNK_ELEMENTS.get(qtype, _DEFAULT_CHUNK_ELEMENTS) // block)
    else:
        step = max(1, _GPU_CHUNK_ELEMENTS // block)
    per_row = n_per_row // block
    for first in range(0, nblocks, step):
        last = min(nblocks, first + step)
        r0, r1 = first // per_row, (last - 1) // per_row + 1
        rows_here = data[r0:r1].reshape(-1, block)  # copies only these rows if not contiguous
        chunk = rows_here[first - r0 * per_row : last - r0 * per_row].to(torch.float32)
        finite = torch.isfinite(chunk)
        if not bool(finite.all()):
            offset = first * block + int((~finite).flatten().nonzero()[0])
            bad = chunk.flatten()[offset - first * block].item()
            raise InputError(
                f"{where}value {bad} at row {offset // n_per_row}, column {offset % n_per_row}; "
                f"cannot encode a non-finite value as {qtype}"
            )
        out[first * nbytes : last * nbytes] = encode(chunk.contiguous()).reshape(-1)
    return out
