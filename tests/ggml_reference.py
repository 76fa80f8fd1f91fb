"""ggml's own quantizer, called through ctypes, as the reference for the torch encoders.

``reference_quantize(data, qtype, imatrix=None)`` returns what ``ggml_quantize_chunk(type, src,
dst, 0, nrows, n_per_row, imatrix)`` writes, as a flat numpy uint8 array (``imatrix``: one
float32 weight per column, or None for NULL).  The library is the
``libggml-base.so`` that ``llama-cpp-python`` builds and ships inside its package.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import gguf
import numpy as np

# ggml_type values (enum ggml_type in ggml.h); gguf's enum uses the same numbers.
GGML_TYPE = {
    "f16": int(gguf.GGMLQuantizationType.F16),
    "bf16": int(gguf.GGMLQuantizationType.BF16),
    "q4_0": int(gguf.GGMLQuantizationType.Q4_0),
    "q4_1": int(gguf.GGMLQuantizationType.Q4_1),
    "q5_0": int(gguf.GGMLQuantizationType.Q5_0),
    "q5_1": int(gguf.GGMLQuantizationType.Q5_1),
    "q8_0": int(gguf.GGMLQuantizationType.Q8_0),
    "q2_k": int(gguf.GGMLQuantizationType.Q2_K),
    "q3_k": int(gguf.GGMLQuantizationType.Q3_K),
    "q4_k": int(gguf.GGMLQuantizationType.Q4_K),
    "q5_k": int(gguf.GGMLQuantizationType.Q5_K),
    "q6_k": int(gguf.GGMLQuantizationType.Q6_K),
    "iq4_nl": int(gguf.GGMLQuantizationType.IQ4_NL),
    "iq4_xs": int(gguf.GGMLQuantizationType.IQ4_XS),
}


def find_libggml_base() -> Path:
    """``libggml-base.so`` of the installed ``llama_cpp`` package (its ``lib`` folder or near it)."""
    import llama_cpp

    pkg = Path(llama_cpp.__file__).resolve().parent
    for folder in (pkg / "lib", pkg, pkg.parent / "lib", pkg.parent):
        hits = sorted(folder.glob("libggml-base*.so*")) + sorted(folder.glob("libggml-base*.dylib"))
        hits += sorted(folder.glob("ggml-base*.dll"))
        if hits:
            return hits[0]
    hits = sorted(pkg.rglob("libggml-base*"))
    if hits:
        return hits[0]
    raise FileNotFoundError(f"no libggml-base shared library under {pkg}")


@lru_cache(maxsize=1)
def ggml_lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(find_libggml_base()))
    # size_t ggml_quantize_chunk(enum ggml_type type, const float * src, void * dst,
    #                            int64_t start, int64_t nrows, int64_t n_per_row, const float * imatrix)
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_void_p,
    ]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.ggml_row_size.restype = ctypes.c_size_t
    return lib


def reference_quantize(data: np.ndarray, qtype: str, imatrix: np.ndarray | None = None) -> np.ndarray:
    """Bytes that ggml's quantizer gives for a 2-D float32 array, with ``imatrix`` (one weight per
    column) or without (None) an importance matrix."""
    lib = ggml_lib()
    t = GGML_TYPE[qtype]
    assert imatrix is not None or not lib.ggml_quantize_requires_imatrix(t), qtype
    src = np.ascontiguousarray(data, dtype=np.float32)
    if src.ndim == 1:
        src = src[None, :]
    nrows, n_per_row = src.shape
    qw = None
    if imatrix is not None:
        qw = np.ascontiguousarray(imatrix, dtype=np.float32)
        assert qw.shape == (n_per_row,), (qw.shape, n_per_row)
    row_size = lib.ggml_row_size(t, n_per_row)
    dst = np.zeros(nrows * row_size, dtype=np.uint8)
    qw_ptr = None if qw is None else qw.ctypes.data
    written = lib.ggml_quantize_chunk(t, src.ctypes.data, dst.ctypes.data, 0, nrows, n_per_row, qw_ptr)
    assert written == dst.size, (written, dst.size)
    return dst
