"""GGML block encoders in torch, byte for byte what llama.cpp's own quantizer writes.

``quantize(data, qtype, importance=None)`` turns a 2-D float32 tensor ``[rows, n_per_row]`` into
the bytes that ``ggml_quantize_chunk(type, src, dst, 0, rows, n_per_row, imatrix)`` gives, for
``f16``, ``bf16``, ``q4_0``, ``q4_1``, ``q5_0``, ``q5_1``, ``q8_0``, ``q2_k``, ``q3_k``, ``q4_k``,
``q5_k``, ``q6_k``, ``iq4_nl`` and ``iq4_xs``; ``importance`` is the importance matrix (one
non-negative weight per column, the same for every row) or None for ``imatrix = NULL``.  All
blocks of a chunk are encoded at once; the work is plain element-wise torch, so it runs wherever
the tensor lives (CPU or CUDA).

The encoders live in the ``ggml`` package (``emulation`` states the rules that make them
bit-exact: same float32 operations in the same order as the C code, in-order sums, C's integer
conversions emulated); this module holds the tables, the argument checks and the chunking.
Which C path runs follows ggml: ``quantize_<type>`` takes the ``_ref`` path when the importance
is NULL and the ``_impl`` path otherwise, except IQ4_NL/IQ4_XS (always their ``_impl``) and
f16/bf16/Q8_0 (no importance variant: the matrix is ignored, here too).
"""

from __future__ import annotations

from collections.abc import Callable

import gguf
import torch

from ..errors import InputError
from ..read.finite import all_finite
from .ggml import iquants, kquants, legacy
from .ggml.emulation import div, fp32_to_bf16_bits, fp32_to_fp16_bits, seq_sum

__all__ = ["GGML_BLOCKS", "QTYPES", "quantize", "row_nbytes", "fp32_to_fp16_bits", "fp32_to_bf16_bits"]

QTYPES = (
    "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
    "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs",
)  # fmt: skip

# qtype -> (elements per block, bytes per block), straight from gguf-py's table.
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    q: tuple(gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[q.upper()]]) for q in QTYPES
}

# Input elements encoded per step.  It bounds the temporaries (the scale searches hold ~10 floats
# per input element, the plain legacy types a handful); on CPU a chunk that stays near the caches
# is fastest, on a GPU a big one amortizes the kernel launches of the sequential loops.
_CHUNK_ELEMENTS = {
    "q2_k": 1 << 18, "q3_k": 1 << 18, "q4_k": 1 << 18, "q5_k": 1 << 18, "q6_k": 1 << 18,
    "iq4_nl": 1 << 18, "iq4_xs": 1 << 18,
}  # fmt: skip
# Byte offsets, within a block, of its float16 fields (scales d / mins dmin / m), as ggml's block
# structs lay them out.  Where an extreme input makes a scale NaN (squares past float32's range), x86
# and CUDA give that NaN different sign bits, and nothing else differs: such rows are redone on the CPU.
_F16_FIELDS: dict[str, tuple[int, ...]] = {
    "q4_0": (0,), "q4_1": (0, 2), "q5_0": (0,), "q5_1": (0, 2), "q8_0": (0,),
    "q2_k": (80, 82), "q3_k": (108,), "q4_k": (0, 2), "q5_k": (0, 2), "q6_k": (208,),
    "iq4_nl": (0,), "iq4_xs": (0,),
}  # fmt: skip
_WEIGHTED_CHUNK_ELEMENTS = 1 << 18  # legacy types with importance run a scale search too
_DEFAULT_CHUNK_ELEMENTS = 1 << 21
_GPU_CHUNK_ELEMENTS = 1 << 23

# Without importance: x [n, block] -> bytes [n, nbytes].
_PLAIN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "f16": legacy.encode_f16,
    "bf16": legacy.encode_bf16,
    "q4_0": legacy.encode_q4_0,
    "q4_1": legacy.encode_q4_1,
    "q5_0": legacy.encode_q5_0,
    "q5_1": legacy.encode_q5_1,
    "q8_0": legacy.encode_q8_0,
    "q2_k": kquants.encode_q2_k,
    "q3_k": kquants.encode_q3_k,
    "q4_k": kquants.encode_q4_k,
    "q5_k": kquants.encode_q5_k,
    "q6_k": kquants.encode_q6_k,
    "iq4_nl": iquants.encode_iq4_nl,
    "iq4_xs": iquants.encode_iq4_xs,
}
# With importance, per-block statistics only: (x, qw) [n, block] -> bytes.
_WEIGHTED: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "q2_k": kquants.encode_q2_k_weighted,
    "q3_k": kquants.encode_q3_k_weighted,
    "q4_k": kquants.encode_q4_k_weighted,
    "q5_k": kquants.encode_q5_k_weighted,
    "q6_k": kquants.encode_q6_k_weighted,
    "iq4_nl": iquants.encode_iq4_nl,
    "iq4_xs": iquants.encode_iq4_xs,
}
# With importance, also the mean square of each block's whole row: (x, qw, sigma2 [n]) -> bytes.
_ROW_WEIGHTED: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "q4_0": legacy.encode_q4_0_weighted,
    "q4_1": legacy.encode_q4_1_weighted,
    "q5_0": legacy.encode_q5_0_weighted,
    "q5_1": legacy.encode_q5_1_weighted,
}
# f16, bf16 and q8_0 have no importance variant in ggml: the matrix is ignored.


def row_nbytes(qtype: str, n_per_row: int) -> int:
    """Bytes of one encoded row of ``n_per_row`` values."""
    block, nbytes = GGML_BLOCKS[qtype]
    return n_per_row // block * nbytes


def _check_importance(importance, n_per_row: int, qtype: str, where: str, device) -> torch.Tensor:
    imp = torch.as_tensor(importance)
    if imp.dim() != 1 or imp.shape[0] != n_per_row:
        raise InputError(
            f"{where}importance vector of shape {tuple(imp.shape)} for {qtype}; expected one weight "
            f"per column, shape ({n_per_row},)"
        )
    if imp.is_complex():
        raise InputError(f"{where}importance vector must be real, got {imp.dtype}")
    imp = imp.to(device=device, dtype=torch.float32)
    bad = ~torch.isfinite(imp) | (imp < 0)
    if bool(bad.any()):
        col = int(bad.nonzero()[0])
        raise InputError(
            f"{where}importance {imp[col].item()} at column {col}; the importance of every column "
            f"must be finite and >= 0 to encode as {qtype}"
        )
    return imp


def _row_sigma2(data: torch.Tensor, step_elements: int) -> torch.Tensor:
    """``sum_x2/n_per_row`` of every row, summed in column order (quantize_row_q4_0_impl & co)."""
    rows, n_per_row = data.shape
    out = torch.empty(rows, dtype=torch.float32, device=data.device)
    batch = max(1, step_elements // n_per_row)
    for r0 in range(0, rows, batch):
        xt = data[r0 : r0 + batch].to(torch.float32).t().contiguous()
        out[r0 : r0 + batch] = seq_sum(xt * xt)
    return div(out, float(n_per_row))


def quantize(
    data: torch.Tensor, qtype: str, name: str | None = None, importance: torch.Tensor | None = None
) -> torch.Tensor:
    """Encode ``data`` [rows, n_per_row] (or 1-D, one row) as GGML ``qtype`` blocks.

    Returns a flat ``torch.uint8`` tensor on ``data``'s device, ``rows * row_nbytes(qtype,
    n_per_row)`` long, equal byte for byte to ``ggml_quantize_chunk`` given ``importance`` as its
    imatrix (None: NULL).  Raises :class:`InputError` (naming ``name``) for a NaN or infinity, a
    row length that is not a whole number of blocks, or an importance vector that is not
    ``n_per_row`` finite values >= 0.  Non-float32 input is converted to float32 first.

    On CPU the K-quants' scale searches run in C (``ggml/native.py``); the rest is a few hundred
    medium-sized element-wise ops per chunk, one chunk after the other.  Rows are encoded each on
    their own, so a caller may encode blocks of rows side by side and join the bytes (the GGUF
    export does, on its threads).
    """
    qtype = qtype.lower()
    if qtype not in _PLAIN:
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
    imp = None
    if importance is not None:
        imp = _check_importance(importance, n_per_row, qtype, where, data.device)
        if qtype not in _WEIGHTED and qtype not in _ROW_WEIGHTED:
            imp = None  # ggml ignores it for this type
    nblocks = rows * n_per_row // block
    out = torch.empty(nblocks * nbytes, dtype=torch.uint8, device=data.device)
    if data.device.type == "cpu":
        default = _DEFAULT_CHUNK_ELEMENTS if imp is None else _WEIGHTED_CHUNK_ELEMENTS
        step = max(1, _CHUNK_ELEMENTS.get(qtype, default) // block)
    else:
        step = max(1, _GPU_CHUNK_ELEMENTS // block)
    per_row = n_per_row // block
    sigma2 = None
    if imp is not None:
        imp_blocks = imp.reshape(per_row, block)
        if qtype in _ROW_WEIGHTED:
            sigma2 = _row_sigma2(data, max(step * block, 1 << 22))
    def encode(first: int) -> None:
        last = min(nblocks, first + step)
        r0, r1 = first // per_row, (last - 1) // per_row + 1
        rows_here = data[r0:r1].reshape(-1, block)  # copies only these rows if not contiguous
        chunk = rows_here[first - r0 * per_row : last - r0 * per_row].to(torch.float32)
        if not all_finite(chunk):
            finite = torch.isfinite(chunk)
            offset = first * block + int((~finite).flatten().nonzero()[0])
            bad = chunk.flatten()[offset - first * block].item()
            raise InputError(
                f"{where}value {bad} at row {offset // n_per_row}, column {offset % n_per_row}; "
                f"cannot encode a non-finite value as {qtype}"
            )
        chunk = chunk.contiguous()
        if imp is None:
            encoded = _PLAIN[qtype](chunk)
        else:
            index = torch.arange(first, last, device=data.device)
            qw = imp_blocks[index % per_row]
            if sigma2 is None:
                encoded = _WEIGHTED[qtype](chunk, qw)
            else:
                encoded = _ROW_WEIGHTED[qtype](chunk, qw, sigma2[index // per_row])
        out[first * nbytes : last * nbytes] = encoded.reshape(-1)

    for first in range(0, nblocks, step):
        encode(first)
    if data.device.type != "cpu":
        _redo_nan_rows_on_cpu(out, data, qtype, imp)
    return out


def nan_scale_rows(out: torch.Tensor, qtype: str, rows: int) -> torch.Tensor:
    """Indices of the rows of encoded ``out`` that hold a NaN float16 field (a NaN scale)."""
    fields = _F16_FIELDS.get(qtype, ())
    if not fields:  # f16 / bf16: finite input, finite or infinite output
        return torch.zeros(0, dtype=torch.long, device=out.device)
    blocks = out.view(-1, GGML_BLOCKS[qtype][1])
    nan = torch.zeros(blocks.shape[0], dtype=torch.bool, device=out.device)
    for o in fields:
        h = blocks[:, o].to(torch.int32) | (blocks[:, o + 1].to(torch.int32) << 8)
        nan |= ((h & 0x7C00) == 0x7C00) & ((h & 0x03FF) != 0)
    return nan.view(rows, -1).any(1).nonzero().flatten()


def _redo_nan_rows_on_cpu(
    out: torch.Tensor, data: torch.Tensor, qtype: str, imp: torch.Tensor | None
) -> None:
    """Re-encode on the CPU every row with a NaN scale.  Such a NaN comes from an invalid operation
    (inf - inf, 0 * inf), which x86 answers with a negative NaN and CUDA with a positive one, and later
    operations carry the sign differently; it only reaches the bytes through float16 fields, so the
    other rows are already exact.  Real weights never get here (it takes values past ~1e19)."""
    rows = data.shape[0]
    redo = nan_scale_rows(out, qtype, rows)
    if redo.numel() == 0:
        return
    row_bytes = out.numel() // rows
    fixed = quantize(data[redo].cpu(), qtype, importance=None if imp is None else imp.cpu())
    out.view(rows, row_bytes)[redo] = fixed.view(-1, row_bytes).to(out.device)
