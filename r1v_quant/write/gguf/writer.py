"""One GGUF file: tensor infos and keys written first, then each tensor's bytes put at their place
in the data section as they are produced, in any order and from any thread (``os.pwrite``), so
encoders running side by side each write their own rows and no encoded tensor is held whole.

The layout is gguf-py's (``GGUFWriter.write_tensor_data``): the data section starts at the first
multiple of the alignment after the tensor infos, and each tensor's bytes are followed by zeros up
to the next multiple; the padding is written too, so the file holds no holes."""

from __future__ import annotations

import errno
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from .plan import LLM, FilePlan, PlannedTensor

# progress(file kind, GGUF tensor name, bytes written)
ProgressFn = Callable[[str, str, int], None]


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):  # pwrite may write less than asked (large writes, signals)
        done += os.pwrite(fd, data[done:], offset + done)


def _reserve(fd: int, size: int) -> None:
    """Claim the file's whole size on disk before any encoding: a full disk fails here, at once,
    not after minutes of work, and the writes then only fill blocks already allocated."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system that cannot: write as it goes
            raise


class GGUFData:
    """The data section of a GGUF file whose header is written: ``put`` writes part of a tensor,
    ``finish`` its padding.  Use as a context manager (closes the file)."""

    def __init__(self, path: Path, plan: FilePlan, add_keys: Callable[[GGUFWriter], None]):
        w = GGUFWriter(path=None, arch="qwen2" if plan.kind == LLM else "clip")
        try:
            for t in plan.tensors:
                w.add_tensor_info(t.gguf_name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
            add_keys(w)
            w.write_header_to_file(path=path)
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
        finally:
            w.close()
        self.alignment = w.data_alignment
        header = path.stat().st_size
        data_start = start = GGUFWriter.ggml_pad(header, self.alignment)
        self.offsets: dict[str, int] = {}
        for t in plan.tensors:
            self.offsets[t.gguf_name] = start
            start += GGUFWriter.ggml_pad(t.nbytes, self.alignment)
        self.size = start
        self._written: Counter[str] = Counter()  # bytes put, per tensor: a tensor is finished only when whole
        self._lock = threading.Lock()
        self.fd = os.open(path, os.O_WRONLY)
        _reserve(self.fd, self.size)
        _pwrite_all(self.fd, memoryview(bytes(data_start - header)), header)

    def put(self, t: PlannedTensor, at: int, data: np.ndarray) -> None:
        """``data`` (C-contiguous) is ``t``'s bytes from byte ``at`` of its data on."""
        view = memoryview(np.ascontiguousarray(data)).cast("B")
        if at < 0 or at + len(view) > t.nbytes:
            raise AssertionError(f"{t.gguf_name}: {len(view)} bytes at {at} do not fit its {t.nbytes}")
        _pwrite_all(self.fd, view, self.offsets[t.gguf_name] + at)
        with self._lock:
            self._written[t.gguf_name] += len(view)

    def finish(self, t: PlannedTensor) -> None:
        """The zeros after ``t``'s bytes, up to the alignment, once all its bytes are put."""
        if self._written[t.gguf_name] != t.nbytes:
            raise AssertionError(f"{t.gguf_name}: {self._written[t.gguf_name]} of its {t.nbytes} bytes written")
        pad = GGUFWriter.ggml_pad(t.nbytes, self.alignment) - t.nbytes
        _pwrite_all(self.fd, memoryview(bytes(pad)), self.offsets[t.gguf_name] + t.nbytes)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> GGUFData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
