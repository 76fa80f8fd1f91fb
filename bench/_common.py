"""Helpers shared by the benchmarks."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """VmHWM of this process image.  Not ru_maxrss: Linux carries that across fork+exec, so a child
    started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def eval_subset(out: Path, images: int, texts: int) -> Path:
    """The first ``images`` image samples and ``texts`` text samples of the shipped eval set."""
    from r1v_quant.calibrate.dataset import write_eval_subset

    return write_eval_subset(out, images, texts)
