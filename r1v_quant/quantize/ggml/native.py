"""The C scale searches (``kernels/ggml_search.c``): built with the system's C compiler on first use,
cached, and called through ctypes (which releases the GIL, so groups are split over threads).

They give the same results as the torch searches in ``search.py`` (a test compares them on edge cases
and random data); those stay the fallback where no compiler is found, on CUDA, and when
``R1V_QUANT_NATIVE=0``.  Native are the searches, most of a K-quant's CPU time (each trial scale is a
pass over the group), the weighted search of the sub-block scales (``make_qp``), and the
requantize-and-pack end of the Q4_K and Q6_K encoders (the Q4_K_M mix)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

# no FMA contraction, no reassociation: the same float32 operations, in the same order, as the reference
CFLAGS = ["-O3", "-std=gnu11", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno",
          "-Wno-psabi"]
MAX_GROUP = 32  # kernels/ggml_search.c's MAX_GROUP (K-quant groups are 16 or 32)


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


# With AVX2, 8 float32 lanes per register instead of SSE's 4 (measured 2.3x faster searches); the
# flags are part of the cache key, so a machine without AVX2 builds and loads its own library.
# Decided when the library is first built, not at import (every CLI start imports this module).
AVX2_SIMD = ["-mavx2", "-DLANES=8"]
BLOCKS = 4  # kernels/ggml_search.c's BLOCKS
_align = 4 * BLOCKS  # groups searched side by side (LANES * BLOCKS): thread shares start on one
MIN_GROUPS_PER_THREAD = 2048  # below this a thread's start costs more than it saves

_lock = threading.Lock()
_lib: Any = None
_pools: dict[int, ThreadPoolExecutor] = {}
_f, _i64, _i32 = ctypes.c_float, ctypes.c_int64, ctypes.c_int32
_ptr = ctypes.c_void_p


def _source() -> Path | None:
    here = Path(__file__).resolve()
    for folder in (here.parents[2] / "_kernels", here.parents[3] / "kernels"):  # installed, then a checkout
        if (folder / "ggml_search.c").is_file():
            return folder / "ggml_search.c"
    return None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("R1V_QUANT_KERNEL_CACHE", Path(base) / "r1v-quant" / "kernels"))


def _build(src: Path) -> Path | None:
    """The shared library for ``src``, compiled once per source, flags and compiler (to a temporary
    name, renamed when whole, so concurrent first uses do not see half a file)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    global _align
    text = src.read_bytes()
    simd = AVX2_SIMD if _has_avx2() else []
    _align = (8 if simd else 4) * BLOCKS
    flags = [*CFLAGS, *simd]
    key = hashlib.sha256(text + " ".join([cc, *flags]).encode()).hexdigest()[:16]
    lib = _cache_dir() / f"ggml_search-{key}.so"
    if lib.is_file():
        return lib
    try:
        lib.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
        os.close(fd)
        done = subprocess.run([cc, *flags, str(src), "-o", tmp, "-lm"], capture_output=True, timeout=120)
        if done.returncode != 0:
            os.unlink(tmp)
            return None
        os.replace(tmp, lib)
    except (OSError, subprocess.SubprocessError):
        return None
    return lib


def _load() -> Any:
    global _lib
    with _lock:
        if _lib is None:
            _lib = False
            src = _source()
            path = _build(src) if src is not None and os.environ.get("R1V_QUANT_NATIVE", "1") != "0" else None
            if path is not None:
                try:
                    lib = ctypes.CDLL(str(path))
                    lib.r1v_make_qkx.argtypes = [_ptr, _ptr, _i64, _i64, _i64, _i32, _f, _f, _i32, _i32,
                                                 _ptr, _ptr, _ptr]
                    lib.r1v_make_qkx_em.argtypes = [_ptr, _ptr, _i64, _i64, _i64, _i64, _i32, _f, _f, _i32,
                                                    _i32, _ptr, _ptr, _ptr]
                    lib.r1v_q4_k_finish.argtypes = [_ptr] * 6 + [_i64, _i64, _i64, _ptr]
                    lib.r1v_q6_k_finish.argtypes = [_ptr, _ptr, _ptr, _i64, _i64, _i64, _ptr]
                    lib.r1v_make_qx_em.argtypes = [_ptr, _ptr, _i64, _i64, _i64, _i64, _i32, _ptr, _ptr]
                    lib.r1v_make_qp_em.argtypes = [_ptr, _ptr, _i64, _i64, _i64, _i64, _i32, _ptr, _ptr]
                    _lib = lib
                except (OSError, AttributeError, TypeError):  # not the library this code expects
                    pass
    return _lib


def available() -> bool:
    return bool(_load())


def usable(x: torch.Tensor) -> bool:
    """Whether the C searches take this element-major [n, G] input."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[0] <= MAX_GROUP and available()


def usable_blocks(x: torch.Tensor) -> bool:
    """Whether the C block finishers take these super-blocks [nb, 256]."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[-1] == 256 and available()


def _split(groups: int, call, per_thread: int = MIN_GROUPS_PER_THREAD) -> None:
    """``call(g0, g1)`` over the groups, on up to torch's intra-op thread count."""
    threads = max(1, min(torch.get_num_threads(), groups // per_thread))
    if threads == 1:
        call(0, groups)
        return
    pool = _pools.get(threads) or _pools.setdefault(threads, ThreadPoolExecutor(threads, "r1v-ggml"))
    bounds = [groups * t // threads // _align * _align for t in range(threads)] + [groups]
    for f in [pool.submit(call, a, b) for a, b in zip(bounds, bounds[1:])]:
        f.result()


def make_qkx(x: torch.Tensor, w: torch.Tensor, nmax: int, rmin: float, rdelta: float, nstep: int,
             use_mad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``search.make_qkx`` in C: (scale [G], the_min [G], L int32 [n, G])."""
    n, groups = x.shape
    x, w = x.contiguous(), w.to(torch.float32).contiguous()  # element-major, as the torch search takes them
    scale, the_min = torch.empty(groups), torch.empty(groups)
    levels = torch.empty((n, groups), dtype=torch.int32)
    lib = _load()
    _split(groups, lambda g0, g1: lib.r1v_make_qkx_em(
        x.data_ptr(), w.data_ptr(), n, groups, g0, g1, nmax, rmin, rdelta, nstep, int(use_mad),
        scale.data_ptr(), the_min.data_ptr(), levels.data_ptr()))
    return scale, the_min, levels


def make_qx(x: torch.Tensor, nmax: int, weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``search.make_qx`` in C: (scale [G], L int32 [n, G])."""
    return _scale_and_levels("r1v_make_qx_em", x, nmax, weights)


def make_qp(x: torch.Tensor, nmax: int, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``search.make_qp`` in C: (scale [G], L int32 [n, G] in 0..255 as stored)."""
    return _scale_and_levels("r1v_make_qp_em", x, nmax, weights)


def _scale_and_levels(entry: str, x: torch.Tensor, nmax: int, weights: torch.Tensor | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The searches with one scale per group and no min: the C ``entry`` over element-major x [n, G]
    (weights likewise, or None where the search allows it), groups split over threads."""
    n, groups = x.shape
    x = x.contiguous()
    w = None if weights is None else weights.to(torch.float32).contiguous()
    scale = torch.empty(groups)
    levels = torch.empty((n, groups), dtype=torch.int32)
    fn = getattr(_load(), entry)
    _split(groups, lambda g0, g1: fn(x.data_ptr(), None if w is None else w.data_ptr(), n, groups, g0, g1, nmax,
                                     scale.data_ptr(), levels.data_ptr()))
    return scale, levels


def _as_i32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.int32).contiguous()


def q4_k_finish(x: torch.Tensor, ls: torch.Tensor, lm: torch.Tensor, d_bits: torch.Tensor,
                dmin_bits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """kquants' ``_q4_k_bytes(*_k4_head(...))`` in C: Q4_K blocks [nb, 144] from the scale search's
    results (``levels`` element-major [32, nb * 8])."""
    nb = x.shape[0]
    x, levels = x.contiguous(), _as_i32(levels)
    ls, lm, d_bits, dmin_bits = _as_i32(ls), _as_i32(lm), _as_i32(d_bits), _as_i32(dmin_bits)
    out = torch.empty((nb, 144), dtype=torch.uint8)
    lib = _load()
    _split(nb, lambda b0, b1: lib.r1v_q4_k_finish(
        x.data_ptr(), ls.data_ptr(), lm.data_ptr(), d_bits.data_ptr(), dmin_bits.data_ptr(), levels.data_ptr(),
        levels.shape[1], b0, b1, out.data_ptr()), per_thread=MIN_GROUPS_PER_THREAD // 8)
    return out


def q6_k_finish(x: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """kquants' ``_encode_q6_k`` after its search, in C: Q6_K blocks [nb, 210] (``levels`` element-major
    [16, nb * 16], 0..63)."""
    nb = x.shape[0]
    x, scales, levels = x.contiguous(), scales.to(torch.float32).contiguous(), _as_i32(levels)
    out = torch.empty((nb, 210), dtype=torch.uint8)
    lib = _load()
    _split(nb, lambda b0, b1: lib.r1v_q6_k_finish(
        x.data_ptr(), scales.data_ptr(), levels.data_ptr(), levels.shape[1], b0, b1, out.data_ptr()),
        per_thread=MIN_GROUPS_PER_THREAD // 16)
    return out
