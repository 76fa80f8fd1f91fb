"""AutoAWQ "GEMM" layout, 4-bit: group quantization and the packed tensors vLLM/LMDeploy/AutoAWQ load.

Torch layout (what :func:`quantize_groups` returns and :func:`dequantize` reads), for a linear with
``N`` output and ``K`` input features and group size ``G`` (groups run along ``K``)::

    q       uint8   [N, K]       integers 0..15
    zeros   uint8   [N, K/G]     integers 0..15
    scales  float32 [N, K/G]     every value exactly representable in float16
    W[n, k] = (q[n, k] - zeros[n, k // G]) * scales[n, k // G]

Packed GEMM layout (what :func:`pack_gemm` returns, the tensor names of an AutoAWQ checkpoint)::

    qweight int32   [K, N/8]     W^T, eight 4-bit values per int32 along N
    qzeros  int32   [K/G, N/8]   packed the same way along N
    scales  float16 [K/G, N]

Packing: for each run of 8 consecutive output columns ``c0 .. c0+7`` the value of column
``c0 + ORDER[j]`` sits at bits ``4*j .. 4*j+3`` with ``ORDER = (0, 2, 4, 6, 1, 3, 5, 7)``.  Bit 31 is
just the top bit of the last nibble, so packed words are often negative int32; unpacking masks each
nibble after the shift and never depends on the sign.

Scales and float16.  The scale of a group is AutoAWQ's ``(max - min).clamp(min=1e-5) / 15``, but the
artifact stores it in float16, and every runtime dequantizes with that float16 value.  We therefore
round the scale to float16 *first* and choose ``zeros`` and ``q`` with the rounded scale.  Then the
stored tensors dequantize to exactly the values :func:`dequantize` reports (and that our error metrics
are computed on), and ``q`` is the nearest grid point for the scale actually stored.  AutoAWQ itself
chooses ``q`` with the float32 scale and stores the float16 one, so its reported pseudo-quantized
weights differ (slightly) from its artifact; ours do not.  With round-to-nearest float16 the stored
scale can be up to one part in 2**11 below the float32 one, so the top of the group range may need
``(max - min) / s16 = 15 * (1 + 2**-11)`` steps: the per-element error stays ``<= s/2`` except at the
very top of such a group, where it is at most ``s * (1/2 + 15 * 2**-11)`` (~``0.507 s``).  Groups whose
values do not straddle 0 have ``zero`` clamped to 0 or 15 (AutoAWQ's convention) and can err more.

``dequantize`` computes in float32, where ``(q - z) * s`` is exact (4-bit integer times an 11-bit
significand).  A float16 runtime rounds that exact product once to float16.
"""

from __future__ import annotations

import torch
from torch import Tensor

BITS = 4
PACK = 32 // BITS  # values per int32
MAX_Q = (1 << BITS) - 1  # 15
ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # nibble j holds column ORDER[j] of its pack of 8
SHIFTS = tuple(BITS * j for j in range(PACK))

_FP16_MAX = float(torch.finfo(torch.float16).max)


def _check_group(k: int, group: int) -> int:
    if group <= 0:
        raise ValueError(f"group size must be positive, got {group}")
    if k % group:
        raise ValueError(f"in_features K={k} is not divisible by the group size G={group}")
    return k // group


def _check_pack(n: int) -> None:
    if n % PACK:
        raise ValueError(f"out_features N={n} is not divisible by {PACK} (eight 4-bit values per int32)")


def _check_2d(name: str, t: Tensor) -> None:
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")


def quantize_groups(
    w: Tensor, group: int = 128, max_val: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Asymmetric min/max 4-bit quantization of ``w`` [N, K] in groups of ``group`` along K.

    ``max_val`` ([N, K/G] or [N, K/G, 1], AWQ's clip search result) clamps every weight of a group to
    ``[-max_val, max_val]`` before min/max are taken, as AutoAWQ's ``apply_clip`` does.

    Returns ``(q uint8 [N, K], zeros uint8 [N, K/G], scales float32 [N, K/G])``; the scales are the
    float16-rounded values (see the module docstring for why q is chosen with them).
    """
    _check_2d("w", w)
    if not w.is_floating_point():
        raise ValueError(f"w must be a floating-point tensor, got {w.dtype}")
    n, k = w.shape
    ng = _check_group(k, group)
    wg = w.detach().to(torch.float32).reshape(n, ng, group)
    if not torch.isfinite(wg).all():
        raise ValueError("w contains NaN or infinite values")
    if max_val is not None:
        mv = max_val.detach().to(device=wg.device, dtype=torch.float32)
        if mv.dim() == 3 and mv.shape[-1] == 1:
            mv = mv[..., 0]
        if tuple(mv.shape) != (n, ng):
            raise ValueError(f"max_val must have shape [{n}, {ng}] (or [{n}, {ng}, 1]), got {tuple(max_val.shape)}")
        mv = mv.unsqueeze(-1)
        wg = torch.maximum(torch.minimum(wg, mv), -mv)

    mx = wg.amax(dim=-1, keepdim=True)
    mn = wg.amin(dim=-1, keepdim=True)
    scale32 = (mx - mn).clamp(min=1e-5) / MAX_Q
    if (scale32 > _FP16_MAX).any():
        raise ValueError("a group's range is too large for a float16 scale")
    # Never 0: the smallest scale, 1e-5/15, is a float16 subnormal (~6.7e-7), not an underflow.
    scale = scale32.to(torch.float16).to(torch.float32)
    zero = (-torch.round(mn / scale)).clamp(0, MAX_Q)
    q = (torch.round(wg / scale) + zero).clamp(0, MAX_Q)
    return (
        q.reshape(n, k).to(torch.uint8),
        zero.reshape(n, ng).to(torch.uint8),
        scale.reshape(n, ng),
    )


def dequantize(q: Tensor, zeros: Tensor, scales: Tensor, group: int = 128) -> Tensor:
    """Reference dequantization in torch layout: ``(q - zeros) * scales`` per group, float32 [N, K]."""
    _check_2d("q", q)
    n, k = q.shape
    ng = _check_group(k, group)
    if tuple(zeros.shape) != (n, ng) or tuple(scales.shape) != (n, ng):
        raise ValueError(
            f"zeros/scales must have shape [{n}, {ng}], got {tuple(zeros.shape)} and {tuple(scales.shape)}"
        )
    qg = q.to(torch.float32).reshape(n, ng, group)
    z = zeros.to(torch.float32).unsqueeze(-1)
    s = scales.to(torch.float32).unsqueeze(-1)
    return ((qg - z) * s).reshape(n, k)


ROWS_PER_STEP = 1024  # (un)packing works on row blocks: its int64 temporaries are 8x the input's bytes


def _pack_rows(v: Tensor) -> Tensor:
    """[R, C] integers 0..15 -> int32 [R, C/8], AWQ nibble order along C."""
    r, c = v.shape
    out = torch.empty((r, c // PACK), dtype=torch.int32, device=v.device)
    for r0 in range(0, r, ROWS_PER_STEP):
        blk = v[r0:r0 + ROWS_PER_STEP].to(torch.int64).reshape(-1, c // PACK, PACK)
        word = torch.zeros(blk.shape[:2], dtype=torch.int64, device=v.device)
        for j, col in enumerate(ORDER):
            word |= blk[:, :, col] << SHIFTS[j]
        # Reinterpret the unsigned 32-bit word as two's-complement int32 explicitly (bit 31 -> negative).
        out[r0:r0 + ROWS_PER_STEP] = torch.where(word >= 1 << 31, word - (1 << 32), word).to(torch.int32)
    return out


def _unpack_rows(p: Tensor) -> Tensor:
    """int32 [R, C/8] -> uint8 [R, C]; exact inverse of :func:`_pack_rows`."""
    r, cp = p.shape
    p = p.to(torch.int64)  # sign-extends; the mask below drops the extension
    out = torch.empty((r, cp, PACK), dtype=torch.uint8, device=p.device)
    for j, col in enumerate(ORDER):
        out[:, :, col] = ((p >> SHIFTS[j]) & MAX_Q).to(torch.uint8)
    return out.reshape(r, cp * PACK)


def _check_q_range(name: str, t: Tensor) -> None:
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {t.dtype}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > MAX_Q):
        raise ValueError(f"{name} values must lie in 0..{MAX_Q}")


def pack_gemm(q: Tensor, zeros: Tensor, scales: Tensor) -> dict[str, Tensor]:
    """Torch-layout ``q`` [N, K], ``zeros`` [N, K/G], ``scales`` [N, K/G] -> AutoAWQ GEMM tensors.

    The group size is ``K / zeros.shape[1]``.  Returns ``{"qweight": int32 [K, N/8],
    "qzeros": int32 [K/G, N/8], "scales": float16 [K/G, N]}``.
    """
    for name, t in (("q", q), ("zeros", zeros), ("scales", scales)):
        _check_2d(name, t)
    n, k = q.shape
    if zeros.shape[0] != n or tuple(scales.shape) != tuple(zeros.shape):
        raise ValueError(
            f"zeros and scales must both be [N={n}, K/G], got {tuple(zeros.shape)} and {tuple(scales.shape)}"
        )
    ng = zeros.shape[1]
    if ng == 0 or k % ng:
        raise ValueError(f"K={k} is not a whole number of groups ({ng} groups)")
    _check_pack(n)
    _check_q_range("q", q)
    _check_q_range("zeros", zeros)
    s16 = scales.to(torch.float16)
    if scales.is_floating_point() and not torch.equal(s16.to(scales.dtype), scales):
        raise ValueError("scales are not exactly representable in float16; quantize with quantize_groups")
    return {
        "qweight": _pack_rows(q.t()),
        "qzeros": _pack_rows(zeros.t()),
        "scales": s16.t().contiguous(),
    }


def unpack_gemm(qweight: Tensor, qzeros: Tensor, scales: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """AutoAWQ GEMM tensors -> ``(q uint8 [N, K], zeros uint8 [N, K/G], scales float32 [N, K/G])``."""
    for name, t in (("qweight", qweight), ("qzeros", qzeros), ("scales", scales)):
        _check_2d(name, t)
    if qweight.dtype != torch.int32 or qzeros.dtype != torch.int32:
        raise ValueError(f"qweight and qzeros must be int32, got {qweight.dtype} and {qzeros.dtype}")
    k, n8 = qweight.shape
    ng, n = scales.shape
    if n != n8 * PACK or tuple(qzeros.shape) != (ng, n8):
        raise ValueError(
            f"inconsistent shapes: qweight {tuple(qweight.shape)}, qzeros {tuple(qzeros.shape)}, "
            f"scales {tuple(scales.shape)}"
        )
    if ng == 0 or k % ng:
        raise ValueError(f"K={k} is not a whole number of groups ({ng} groups)")
    q = _unpack_rows(qweight).t().contiguous()
    zeros = _unpack_rows(qzeros).t().contiguous()
    return q, zeros, scales.to(torch.float32).t().contiguous()


__all__ = ["BITS", "ORDER", "PACK", "quantize_groups", "dequantize", "pack_gemm", "unpack_gemm"]
