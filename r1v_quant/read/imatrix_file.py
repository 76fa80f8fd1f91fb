"""An importance-matrix file in llama.cpp's GGUF format, read back as the weights its quantizer uses.

The file (``general.type`` "imatrix", written by ``r1v-quant imatrix`` or ``llama-imatrix``) holds, per
tensor, ``<name>.in_sum2`` (the per-input-column sum of squared activations, F32) and ``<name>.counts``
(tokens summed, F32), and ``imatrix.datasets`` / ``imatrix.chunk_count`` / ``imatrix.chunk_size``.
:meth:`Imatrix.importance` is what ``llama-quantize --imatrix`` hands the encoders: sum / count in
float32 (all ones where nothing was counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

SUMS, COUNTS = ".in_sum2", ".counts"


@dataclass
class Imatrix:
    path: Path
    datasets: list[str]
    chunk_count: int
    chunk_size: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # GGUF tensor name -> float32 [columns]
    counts: dict[str, float] = field(default_factory=dict)

    def importance(self, name: str) -> np.ndarray | None:
        """The weights for tensor ``name`` (None if the matrix has no entry for it)."""
        if name not in self.sums:
            return None
        count = np.float32(self.counts[name])
        if count <= 0:
            return np.ones_like(self.sums[name])
        return self.sums[name] / count  # float32 / float32, as llama-quantize divides


def load_imatrix(path: Path) -> Imatrix:
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: importance matrix not found")
    try:
        r = GGUFReader(path, "r")
    except (ValueError, OSError, IndexError) as e:
        raise InputError(f"{path}: not a readable GGUF file ({e})") from None

    def value(key: str, default: object = None) -> object:
        f = r.fields.get(key)
        return f.contents() if f is not None else default

    if value("general.type") != "imatrix":
        raise InputError(f"{path}: general.type is {value('general.type')!r}, not 'imatrix'")
    m = Imatrix(path, list(value("imatrix.datasets", []) or []), int(value("imatrix.chunk_count", 0) or 0),
                int(value("imatrix.chunk_size", 0) or 0))
    tensors = {t.name: t for t in r.tensors}
    for name, t in tensors.items():
        if not name.endswith(SUMS):
            continue
        base = name.removesuffix(SUMS)
        counts = tensors.get(base + COUNTS)
        if counts is None:
            raise InputError(f"{path}: '{name}' has no '{base + COUNTS}'")
        sums = np.asarray(t.data, dtype=np.float32).reshape(-1)
        c = np.asarray(counts.data, dtype=np.float32).reshape(-1)
        if len(c) != 1:
            raise InputError(f"{path}: '{base}' has {len(c)} experts' counts; only dense models are supported")
        if not np.isfinite(sums).all() or (sums < 0).any():
            raise InputError(f"{path}: '{name}' holds negative or non-finite sums")
        m.sums[base], m.counts[base] = sums.copy(), float(np.round(c[0]))  # counts are whole (lround)
    return m
