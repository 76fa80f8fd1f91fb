"""An importance matrix written in llama.cpp's GGUF format (what ``llama-imatrix`` writes and
``llama-quantize --imatrix`` reads): ``general.type`` "imatrix", the dataset names, chunk count and
size, and per tensor, in name order, ``<name>.in_sum2`` (F32 [1, columns]) and ``<name>.counts``
(F32 [1, 1])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gguf import GGUFWriter

from .atomic import atomic_file


def write_imatrix(path: Path, entries: dict[str, tuple[torch.Tensor, int]], datasets: list[str],
                  chunk_count: int, chunk_size: int, overwrite: bool = False) -> None:
    """``entries``: GGUF tensor name -> (sum of squares per input column, tokens)."""
    with atomic_file(path, overwrite) as tmp:
        w = GGUFWriter(tmp, arch="")
        w.kv_data[0].pop("general.architecture", None)  # llama-imatrix's files have none
        w.add_type("imatrix")
        w.add_array("imatrix.datasets", datasets)
        w.add_uint32("imatrix.chunk_count", chunk_count)
        w.add_uint32("imatrix.chunk_size", chunk_size)
        for name in sorted(entries):
            sums, count = entries[name]
            w.add_tensor(f"{name}.in_sum2", sums.to(torch.float32).numpy().reshape(1, -1))
            w.add_tensor(f"{name}.counts", np.array([[float(count)]], dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
