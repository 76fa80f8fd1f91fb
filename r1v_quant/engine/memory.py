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


class PeakMeter:
    """Measured peaks per phase, to set beside the plan's: the host's resident set (VmHWM, reset at each
    phase start through ``/proc/self/clear_refs``) and the CUDA allocator's peak.  Where the kernel
    does not allow the reset, host peaks are not measured (None)."""

    def __init__(self, device: str):
        self.cuda = torch.device(device).type == "cuda"
        self.device = device
        self.peaks: dict[str, dict[str, int | None]] = {}
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

    def done(self, phase: str) -> None:
        host = _proc_kb("/proc/self/status", "VmHWM") if self.host_ok else None
        dev = int(torch.cuda.max_memory_allocated(self.device)) if self.cuda else None
        self.peaks[phase] = {"host_bytes": host, "device_bytes": dev}
        self.start()

    def host_peak(self) -> int | None:
        """The largest host peak over every phase so far: the run's peak resident set."""
        values = [p["host_bytes"] for p in self.peaks.values() if p["host_bytes"] is not None]
        return max([*values, self.before or 0]) or None
