"""C scalar semantics in element-wise torch: the ground rules every GGML encoder here follows.

Bit-exactness with ggml rests on doing the same float32 operations in the same order as its C
code (built without FMA contraction or fast-math), on every element of every block at once:

* every ``a / b`` is a tensor-by-tensor division (CUDA turns division by a Python number into
  a multiplication by its reciprocal, which can round differently);
* running sums (``s += ...``) are accumulated one element at a time, in element order, vectorized
  across groups only, because float addition is not associative;
* "keep the first strict maximum" searches use ``argmax`` (first index) or explicit loops;
* ggml's ``nearest_int`` (add 1.5 * 2**23, read the mantissa bits) and C's float-to-int
  truncation are emulated with their out-of-range and NaN results, since intermediate
  infinities and NaNs do occur for extreme inputs (e.g. an f16 scale that overflowed, or
  squares of values above ~1.8e19);
* ``sqrtf`` goes through float64 (torch's float32 CPU ``sqrt`` is not correctly rounded);
* f16 values are produced by IEEE round-to-nearest-even conversion, which is what ggml's
  portable ``GGML_FP32_TO_FP16`` computes.

Groups are usually laid out element-major, ``[n, G]`` (element ``i`` of every group in row ``i``),
so a C loop ``for (i = 0; i < n; ++i)`` becomes ``n`` operations on contiguous length-``G`` rows.
"""

from __future__ import annotations

import numpy as np
import torch

MAGIC_ROUND = 12582912.0  # 1.5 * 2**23: adding it leaves round-to-nearest-even(x) in the mantissa
GROUP_MAX_EPS = 1e-15  # ggml's GROUP_MAX_EPS (1e-15f; compared against float32 values)


def full(like: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full_like(like, value, dtype=torch.float32)


def f32_consts(values: list[float], device: torch.device) -> torch.Tensor:
    """A float32 tensor of values already rounded as C computes them (``np.float32`` arithmetic)."""
    return torch.tensor(np.array(values, dtype=np.float32), device=device)


def div(a: torch.Tensor | float, b: torch.Tensor | float) -> torch.Tensor:
    """IEEE float32 ``a / b`` with both operands as tensors (see the module notes)."""
    if not isinstance(a, torch.Tensor):
        a = full(b, a)
    if not isinstance(b, torch.Tensor):
        b = full(a, b)
    return torch.div(a, b)


def nearest_int(f: torch.Tensor) -> torch.Tensor:
    """ggml's ``nearest_int``: round half to even via the 1.5 * 2**23 trick, as int32.

    Outside +-2**22 the trick wraps, an infinity gives -2**22 and a NaN gives 0 (the x86
    default NaN has an all-zero payload below the quiet bit); all reproduced here.
    """
    r = (f + MAGIC_ROUND).view(torch.int32).bitwise_and_(0x007FFFFF).sub_(0x00400000)
    if f.device.type == "cpu":  # the x86 default NaN already lands on 0
        return r
    return torch.where(torch.isnan(f), torch.zeros_like(r), r)


def levels(f: torch.Tensor, lo: int, hi: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``MAX(lo, MIN(hi, nearest_int(f)))`` as float32 (exact small integers).

    With ``out`` given, ``f`` is a scratch tensor and is overwritten (``out`` may be ``f``).
    """
    nan = None if f.device.type == "cpu" else torch.isnan(f)  # see nearest_int
    if out is None:
        f = f + MAGIC_ROUND
        out = torch.empty_like(f)
    else:
        f = f.add_(MAGIC_ROUND)
    bits = f.view(torch.int32).bitwise_and_(0x007FFFFF)
    if nan is not None:
        bits.masked_fill_(nan, 0x00400000)
    bits.clamp_(lo + 0x00400000, hi + 0x00400000)
    out.copy_(bits)
    return out.sub_(float(0x00400000))


_NEAREST_INT_EXACT = 4194304.0  # 2**22: below it nearest_int is plain round-half-even


def within_round_range(lo: torch.Tensor, hi: torch.Tensor) -> bool:
    """True when per-group bounds ``lo``/``hi`` of the values about to be rounded are all finite
    and below 2**22 in magnitude, so that ``levels_fast`` equals ``levels`` on every value."""
    return bool(((lo.abs() < _NEAREST_INT_EXACT) & (hi.abs() < _NEAREST_INT_EXACT)).all())


def levels_fast(f: torch.Tensor, lo: int, hi: int, fast: bool, out: torch.Tensor) -> torch.Tensor:
    """``levels(f, lo, hi, out)`` in two passes instead of five when ``fast`` (see
    ``within_round_range``); ``f`` is scratch.  A level of 0 may come out as -0.0 here, which
    changes nothing where it is used (products summed from +0, or squared)."""
    if not fast:
        return levels(f, lo, hi, out=out)
    return torch.round(f, out=out).clamp_(lo, hi)


def trunc_i32(t: torch.Tensor) -> torch.Tensor:
    """C float -> int conversion as x86 does it: truncate, 0x80000000 when out of range or NaN."""
    ok = (t >= -2147483648.0) & (t < 2147483648.0)
    v = torch.where(ok, t, torch.zeros_like(t)).trunc().to(torch.int32)
    return torch.where(ok, v, torch.full_like(v, -(2**31)))


def sqrtf(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 square root (C ``sqrtf``).

    torch's float32 ``sqrt`` on CPU is not correctly rounded (one ulp off for ~17% of random
    float32 bit patterns, measured with torch 2.13); the float64 root rounded to float32 is
    exact (a float32 square root is never close enough to a midpoint for the double rounding
    to matter).
    """
    return torch.sqrt(x.to(torch.float64)).to(torch.float32)


def as_int8(v: torch.Tensor) -> torch.Tensor:
    """Value of an int stored into an ``int8_t`` (low byte, sign-extended)."""
    return ((v & 0xFF) ^ 0x80) - 0x80


def roundf(x: torch.Tensor) -> torch.Tensor:
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


def fp16_bits_to_fp32(h: torch.Tensor) -> torch.Tensor:
    return h.to(torch.int16).view(torch.float16).to(torch.float32)


def fp16_round(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(half bits, the half value back as float32): ``y.d = FP32_TO_FP16(x)`` then reading ``y.d``."""
    h = fp32_to_fp16_bits(x)
    return h, fp16_bits_to_fp32(h)


def fp32_to_bf16_bits(x: torch.Tensor) -> torch.Tensor:
    """float32 -> bfloat16 bits (int32 in 0..65535): round to nearest even, NaN made quiet."""
    u = x.to(torch.float32).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return torch.where(nan, (u >> 16) | 64, rounded).to(torch.int32) & 0xFFFF


def u16_bytes(h: torch.Tensor) -> torch.Tensor:
    """[..., k] int values < 2**16 -> [..., 2k] little-endian uint8."""
    return torch.stack([h & 0xFF, (h >> 8) & 0xFF], dim=-1).flatten(-2).to(torch.uint8)


def or_fields(t: torch.Tensor, dim: int, width: int) -> torch.Tensor:
    """``t[.., 0, ..] | t[.., 1, ..] << width | t[.., 2, ..] << 2*width | ...`` along ``dim``
    (disjoint bit fields; an OR chain, cheaper than an integer ``sum``, which widens to int64)."""
    parts = t.unbind(dim)
    out = parts[0].clone()
    for k, part in enumerate(parts[1:], 1):
        out |= part << (width * k)
    return out


def bits_to_bytes(bits: torch.Tensor) -> torch.Tensor:
    """[..., 8k] of 0/1 (element order = bit order, LSB first) -> [..., k] uint8."""
    return or_fields(bits.to(torch.int32).unflatten(-1, (-1, 8)), -1, 1).to(torch.uint8)


def pack_2bit(lvl: torch.Tensor) -> torch.Tensor:
    """[B, 256] levels 0..3 -> [B, 64] bytes: ``qs[32c + l] = L[128c + l] | L[.. + 32] << 2 | ...``."""
    q = lvl.to(torch.int32).reshape(-1, 2, 4, 32)  # [block, 128-half, shift, l]
    return or_fields(q & 3, 2, 2).reshape(-1, 64).to(torch.uint8)


def seq_sum(terms: torch.Tensor, start_from_zero: bool = True, dim: int = 0) -> torch.Tensor:
    """Left-to-right float32 sum over ``dim``, as ``for (i...) s += t[i]`` does it."""
    parts = terms.unbind(dim)  # one call for all the views: cheaper than a select per step
    if start_from_zero:
        acc = torch.zeros_like(parts[0])
    else:
        acc = parts[0].clone()
        parts = parts[1:]
    for part in parts:
        acc.add_(part)
    return acc


def first_absmax(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(amax, signed value) of the first element of largest magnitude; (0, +0.0) if all zero.

    ``if (fabsf(x) > amax) { amax = fabsf(x); max = x; }`` starting from 0: a NaN never wins.
    """
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
    idx = ax.argmax(dim=dim, keepdim=True)  # first index of the largest (inputs here are finite)
    amax = ax.gather(dim, idx).squeeze(dim)
    v = x.gather(dim, idx).squeeze(dim)
    return amax, torch.where(amax > 0, v, torch.zeros_like(v))


def first_min_max(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
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


def running_max(v: torch.Tensor) -> torch.Tensor:
    """``m = 0; for j: if (v[j] > m) m = v[j]`` over dim 1 (NaN never wins)."""
    m = torch.zeros_like(v[:, 0])
    for j in range(v.shape[1]):
        m = torch.where(v[:, j] > m, v[:, j], m)
    return m


def inverse_or_zero(d: torch.Tensor) -> torch.Tensor:
    """``d ? 1.0f/d : 0.0f`` (a NaN ``d`` is true in C, so it gives 1/NaN)."""
    return torch.where(d != 0, div(1.0, d), torch.zeros_like(d))
