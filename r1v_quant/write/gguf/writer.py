"""One GGUF file written in a single streamed pass: tensor infos and keys first, then each tensor's
bytes as they are produced, so at most one encoded tensor is in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from .plan import LLM, FilePlan, PlannedTensor

# progress(file kind, GGUF tensor name, bytes written)
ProgressFn = Callable[[str, str, int], None]


def write_gguf(path: Path, plan: FilePlan, add_keys: Callable[[GGUFWriter], None],
               encoded: Iterable[tuple[PlannedTensor, np.ndarray]], progress: ProgressFn | None = None) -> None:
    """Write ``plan`` to ``path``: ``add_keys(writer)`` adds the key/values, ``encoded`` yields each
    planned tensor's bytes in plan order."""
    w = GGUFWriter(path=None, arch="qwen2" if plan.kind == LLM else "clip")
    try:
        for t in plan.tensors:
            w.add_tensor_info(t.gguf_name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
        add_keys(w)
        w.write_header_to_file(path=path)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        expected = iter(plan.tensors)
        for t, data in encoded:
            if t is not next(expected, None) or data.nbytes != t.nbytes:
                raise AssertionError(f"{t.gguf_name}: encoded {data.nbytes} bytes out of plan order or size")
            w.write_tensor_data(data)
            del data
            if progress is not None:
                progress(plan.kind, t.gguf_name, t.nbytes)
    finally:
        w.close()
