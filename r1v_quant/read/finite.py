"""Weights must be finite: a NaN or infinity makes every figure computed from them meaningless.

Every reader checks each tensor as it is read, so a command stops before the work that would use
it, with one line naming the file, the tensor and the first bad value's index."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError

CHECK_ELEMENTS = 1 << 22  # checked per step
# isfinite's mask, its negation and glibc's freed-but-kept blocks: measured up to ~9 bytes per element
# at the step's peak (35 MB at 4M elements; 101-148 MB at 16M, which planned runs did not expect)
CHECK_PEAK_BYTES = 9 * CHECK_ELEMENTS


def all_finite(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is finite, by its minimum and maximum: both propagate a NaN and
    an infinity is one of them.  Measured 27x faster than ``isfinite(t).all()`` on 4M BF16 values
    (0.35 ms against 9.5 ms, one thread), so checking every weight costs little; only a tensor
    that fails needs the mask that finds the first bad value."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_finite(where: Path, name: str, t: torch.Tensor, first_row: int = 0) -> None:
    """Raise :class:`InputError` at the first non-finite value of ``t`` (rows counted from ``first_row``)."""
    if all_finite(t):
        return
    flat = t.reshape(-1)
    for start in range(0, flat.numel(), CHECK_ELEMENTS):
        block = flat[start:start + CHECK_ELEMENTS]
        bad = ~torch.isfinite(block)
        if bool(bad.any()):
            pos = start + int(bad.nonzero()[0])
            index = list(torch.unravel_index(torch.tensor(pos), t.shape)) if t.dim() else []
            if index:
                index[0] += first_row
            count = int((~torch.isfinite(flat)).sum())
            raise InputError(f"{where}: tensor '{name}' holds {count} NaN/Inf value(s), the first "
                             f"({flat[pos].item()}) at index {[int(i) for i in index]}")
