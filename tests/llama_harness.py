"""llama.cpp itself, for tests: its converter (from the llama-cpp-python sdist), llama-quantize,
a GGUF reader, and mtmd's image embeddings.

The llama.cpp sources (its converter) come from the llama-cpp-python sdist: env
``R1V_LLAMA_CPP_SDIST`` (default /tmp/sdist/llama_cpp_python-0.3.36), else downloaded once
with ``pip download`` into the pytest cache (fixture ``llama_sdist`` in ``conftest.py``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import gguf
import numpy as np
from PIL import Image

LLAMA_CPP_VERSION = "0.3.36"
DEFAULT_SDIST = Path(f"/tmp/sdist/llama_cpp_python-{LLAMA_CPP_VERSION}")
F32_KV = {"type_k": 0, "type_v": 0}  # GGML_TYPE_F32 KV cache: keeps llama.cpp's attention in float32


def sdist(cache_dir: Path) -> Path:
    """The unpacked llama-cpp-python sdist (llama.cpp's sources, its converter among them)."""
    env = os.environ.get("R1V_LLAMA_CPP_SDIST")
    path = Path(env) if env else DEFAULT_SDIST
    if (path / "vendor/llama.cpp/convert_hf_to_gguf.py").is_file():
        return path
    unpacked = cache_dir / f"llama_cpp_python-{LLAMA_CPP_VERSION}"
    if not (unpacked / "vendor/llama.cpp/convert_hf_to_gguf.py").is_file():
        archive = cache_dir / f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"
        if not archive.is_file():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-d", str(cache_dir)], check=True,
                           stdin=subprocess.DEVNULL)
        with tarfile.open(archive) as tf:
            try:
                tf.extractall(cache_dir, filter="data")
            except TypeError:  # Python before 3.11.4 has no extraction filters
                tf.extractall(cache_dir)
    return unpacked


def convert(sdist: Path, model: Path, outfile: Path, outtype: str, mmproj: bool) -> Path:
    """llama.cpp's own converter, as a user runs it (no stdin: config.json has an auto_map)."""
    llama_dir = sdist / "vendor" / "llama.cpp"
    cmd = [sys.executable, str(llama_dir / "convert_hf_to_gguf.py"), str(model), "--outtype", outtype,
           "--outfile", str(outfile)] + (["--mmproj"] if mmproj else [])
    env = dict(os.environ, PYTHONPATH=str(llama_dir / "gguf-py"))
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return outfile


def llama_quantize(src: Path, dst: Path, ftype: int, imatrix: Path | None = None, nthread: int = 2) -> Path:
    """``llama_model_quantize``; with ``imatrix`` (a GGUF imatrix file), given what ``llama-quantize
    --imatrix FILE`` gives it: each tensor's importance (sum / count) and the four ``quantize.imatrix.*``
    keys that tool adds.  Shared by the byte-identity tests and ``bench/bench_gguf.py``."""
    import llama_cpp

    from r1v_quant.read.imatrix_file import load_imatrix

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread
    keep: list[object] = []  # the buffers the C structs point into, alive until the call returns
    if imatrix is not None:
        im = load_imatrix(imatrix)
        entries = (llama_cpp.llama_model_imatrix_data * (len(im.sums) + 1))()
        for e, name in zip(entries, im.sums):
            buf = np.ascontiguousarray(im.importance(name), dtype=np.float32)
            keep += [buf, name.encode()]
            e.name, e.size = keep[-1], len(buf)
            e.data = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[len(im.sums)].name = None  # terminator
        params.imatrix = ctypes.cast(entries, type(params.imatrix))
        kv = [("quantize.imatrix.file", imatrix.name), ("quantize.imatrix.dataset", im.datasets[0]),
              ("quantize.imatrix.entries_count", len(im.sums)), ("quantize.imatrix.chunks_count", im.chunk_count)]
        kvs = (llama_cpp.llama_model_kv_override * (len(kv) + 1))()
        for o, (key, value) in zip(kvs, kv):
            o.key = key.encode()
            if isinstance(value, str):
                o.tag, o.value.val_str = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR, value.encode()[:127]
            else:
                o.tag, o.value.val_i64 = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, value
        kvs[len(kv)].key = b""  # terminator
        params.kv_overrides = ctypes.cast(kvs, type(params.kv_overrides))
        keep += [entries, kvs]
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc}")
    return dst


# A small GGUF reader: gguf.GGUFReader builds a numpy view per array element, which takes
# ~15 s for a file with Qwen2's 152k tokens and merges on a busy 2-core box.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@dataclasses.dataclass(frozen=True)
class GGUFFile:
    path: Path
    metadata: dict[str, tuple]  # key -> (value type(s), value)
    tensors: list[tuple[str, tuple[int, ...], str, int]]  # name, GGML shape, type name, offset in data
    data_offset: int

    @property
    def infos(self) -> list[tuple[str, tuple[int, ...], str]]:
        return [t[:3] for t in self.tensors]

    def data(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.data_offset)
            return f.read()

    def tensor(self, name: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType, tuple[int, ...]]:
        """(raw bytes, type, torch-order shape) of one tensor."""
        (_, shape, type_name, offset), = [t for t in self.tensors if t[0] == name]
        qtype = gguf.GGMLQuantizationType[type_name]
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * size
        raw = np.fromfile(self.path, dtype=np.uint8, count=nbytes, offset=self.data_offset + offset)
        return raw, qtype, tuple(reversed(shape))


def read_gguf(path: Path) -> GGUFFile:
    buf = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        (v,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v

    def string() -> str:
        nonlocal pos
        n = take("<Q")
        pos += n
        return bytes(buf[pos - n:pos]).decode("utf-8")

    def value(vtype: int):
        nonlocal pos
        if vtype == 8:
            return string()
        if vtype != 9:
            return take(_SCALARS[vtype])
        item, n = take("<I"), take("<Q")
        if item == 8:
            return (item, [string() for _ in range(n)])
        dt = np.dtype(_SCALARS[item])
        arr = np.frombuffer(buf, dtype=dt, count=n, offset=pos).tolist()
        pos += n * dt.itemsize
        return (item, arr)

    assert bytes(buf[:4]) == b"GGUF", path
    pos = 4
    version, n_tensors, n_kv = take("<I"), take("<Q"), take("<Q")
    assert version == 3
    meta = {}
    for _ in range(n_kv):
        key = string()
        vtype = take("<I")
        v = value(vtype)
        meta[key] = ((vtype, v[0]), v[1]) if vtype == 9 else ((vtype,), v)
    tensors = []
    for _ in range(n_tensors):
        name = string()
        dims = tuple(take("<Q") for _ in range(take("<I")))
        tensors.append((name, dims, gguf.GGMLQuantizationType(take("<I")).name, take("<Q")))
    align = meta.get("general.alignment", ((4,), 32))[1]
    return GGUFFile(Path(path), meta, tensors, -(-pos // align) * align)


def mtmd_image_embeddings(llm_path: Path, mmproj_path: Path, image: Image.Image) -> np.ndarray:
    """llama.cpp's image embeddings: mtmd_init_from_file, mtmd_tokenize (one media marker, one
    bitmap), mtmd_encode_chunk on each image chunk, mtmd_get_output_embd ([tokens, n_embd])."""
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(str(llm_path).encode(), llama_cpp.llama_model_default_params())
    assert model, "llama.cpp could not load the language model"
    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.print_timings, params.warmup = False, 2, False, False
    ctx = mtmd.mtmd_init_from_file(str(mmproj_path).encode(), model, params)
    assert ctx, "mtmd_init_from_file failed"
    rgb = np.array(image.convert("RGB"), dtype=np.uint8)  # writable, C-contiguous
    bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, (ctypes.c_uint8 * rgb.size).from_buffer(rgb))
    chunks = mtmd.mtmd_input_chunks_init()
    try:
        marker = mtmd.mtmd_default_marker()
        text = mtmd.mtmd_input_text(text=marker, text_len=len(marker), add_special=False, parse_special=True)
        assert mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1) == 0
        n_embd = llama_cpp.llama_model_n_embd(model)
        out = []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) != mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                continue
            n = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            assert mtmd.mtmd_encode_chunk(ctx, chunk) == 0
            out.append(np.ctypeslib.as_array(mtmd.mtmd_get_output_embd(ctx), shape=(n * n_embd,)).copy()
                       .reshape(n, n_embd))
        return np.concatenate(out)
    finally:
        mtmd.mtmd_input_chunks_free(chunks)
        mtmd.mtmd_bitmap_free(bitmap)
        mtmd.mtmd_free(ctx)
        llama_cpp.llama_model_free(model)
