"""The process's memory: what it holds, what the machine has left, peaks per phase, and handing
freed memory back.  Used to plan runs before they start and to measure them as they go."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import torch


def _proc_kb(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def host_rss() -> int:
    """This process's resident memory now."""
    return _proc_kb("/proc/self/status", "VmRSS") or 0


def host_available() -> int | None:
    """Memory the kernel could give this process now (MemAvailable); None where unknown."""
    return _proc_kb("/proc/meminfo", "MemAvailable")


def device_free(device: str) -> int | None:
    """Free memory of a CUDA device (None for the CPU)."""
    if torch.device(device).type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def release_free_memory() -> None:
    """Hand memory the allocator holds but no tensor uses back to the system (glibc ``malloc_trim``).

    glibc serves allocations below its mmap threshold (raised up to 32 MB as big blocks are freed)
    from its heap and keeps that heap's high water mark resident; after a step that made many
    such tensors (the scale search), the process would stay that big through every later step.
    Called between steps, so resident memory follows what is alive and the plan can predict it."""
    if _libc():
        _LIBC.malloc_trim(0)


def start_device(device: str) -> None:
    """Load the CUDA runtime and the kernels a run uses (matmul, attention) now, so that the host memory
    they take (about 0.5 GB, measured on an H200) is part of the process's size before the run, which the
    plan starts from.  Nothing to do on the CPU, or where CUDA is missing (the run will say so)."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return
    x = torch.ones(1, 2, 8, 64, device=device, dtype=torch.bfloat16)
    torch.nn.functional.scaled_dot_product_attention(x, x, x, is_causal=True)
    for t in (x[0, 0], x[0, 0].float()):  # bfloat16 products, float32 losses
        (t @ t.T).sum().item()


class PeakMeter:
    """Measured peaks per phase, and per step within it, to set beside the plan's: the host's resident
    set (VmHWM, reset at each start through ``/proc/self/clear_refs``) and the CUDA allocator's peak.
    Where the kernel does not allow the reset, host peaks are not measured (None)."""

    def __init__(self, device: str):
        self.cuda = torch.device(device).type == "cuda"
        self.device = device
        self.peaks: dict[str, dict[str, int | None]] = {}
        self.steps: dict[str, dict[str, int | None]] = {}  # the plan's step names, max over layers
        self._phase = {"host_bytes": None, "device_bytes": None}  # the phase's steps so far
        # what the process reached before the meter existed (reading the data, planning) counts for the run
        self.before = _proc_kb("/proc/self/status", "VmHWM")
        self.start()

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.host_ok = True
        except OSError:
            self.host_ok = False
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def _read(self) -> dict[str, int | None]:
        return {"host_bytes": _proc_kb("/proc/self/status", "VmHWM") if self.host_ok else None,
                "device_bytes": int(torch.cuda.max_memory_allocated(self.device)) if self.cuda else None}

    @staticmethod
    def _max(a: dict[str, int | None], b: dict[str, int | None]) -> dict[str, int | None]:
        return {k: None if a[k] is None and b[k] is None else max(a[k] or 0, b[k] or 0) for k in a}

    def step(self, name: str) -> None:
        """The step ``name`` (as the plan names it) has just ended: its peaks since the last mark."""
        now = self._read()
        self.steps[name] = self._max(self.steps.get(name, now), now)
        self._phase = self._max(self._phase, now)
        self.start()

    def done(self, phase: str) -> None:
        self.peaks[phase] = self._max(self._phase, self._read())
        self._phase = {"host_bytes": None, "device_bytes": None}
        self.start()

    def host_peak(self) -> int | None:
        """The largest host peak over every phase so far: the run's peak resident set."""
        values = [p["host_bytes"] for p in self.peaks.values() if p["host_bytes"] is not None]
        return max([*values, self.before or 0]) or None
