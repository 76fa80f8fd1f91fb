"""One safetensors shard: its header, checked against the file, and positioned reads.

We parse the header ourselves (8-byte little-endian length, then JSON) instead of
going through ``safetensors.safe_open`` for two reasons:

* a truncated or corrupt shard must be reported as one clear line naming the
  file, before any work starts, which needs the header's offsets compared with
  the file's size;
* reading a tensor with ``readinto`` straight into its destination buffer copies
  it once and leaves nothing mapped behind.  A shard kept memory-mapped for the
  whole walk keeps every page it touched counted in the process's RSS, so a
  walk over a 5 GB shard would look like 5 GB of memory.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError

# safetensors dtype tag -> (torch dtype, bytes per element).  Only floating
# point sources are accepted; integer tensors mean the checkpoint is already
# quantized (or is not a model at all).
FLOAT_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "BF16": (torch.bfloat16, 2),
    "F16": (torch.float16, 2),
    "F32": (torch.float32, 4),
}
# Integer tensors are readable too (the tool's own outputs: AWQ packs, reference files);
# the checkpoint reader refuses them in a source model.
READ_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    **FLOAT_DTYPES, "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2),
    "I8": (torch.int8, 1), "U8": (torch.uint8, 1),
}
KNOWN_DTYPES = set(READ_DTYPES) | {
    "F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL", "F8_E4M3", "F8_E5M2",
}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors tag, e.g. "BF16"
    shape: tuple[int, ...]
    begin: int  # absolute byte offset in the file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def rows(self) -> int:
        """Length of the first dimension (1 for a scalar): the unit ``read_rows`` reads in."""
        return self.shape[0] if self.shape else 1

    @property
    def row_nbytes(self) -> int:
        return self.nbytes // self.rows if self.rows else 0

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class SafetensorsFile:
    """Header of one shard, validated against the file on disk."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tensors: dict[str, TensorInfo] = {}
        self.metadata: dict[str, str] = {}
        self._parse()

    def _fail(self, problem: str) -> InputError:
        return InputError(f"{self.path}: {problem}")

    def _parse(self) -> None:
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise self._fail(f"truncated shard ({size} bytes, no header)")
                (header_len,) = struct.unpack("<Q", head)
                if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                    raise self._fail(
                        f"truncated or not a safetensors file (header claims {header_len} bytes, file has {size})"
                    )
                raw = f.read(header_len)
        except PermissionError:
            raise self._fail("permission denied") from None
        except IsADirectoryError:
            raise self._fail("is a directory, expected a safetensors file") from None
        except FileNotFoundError:
            raise self._fail("shard file not found") from None
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self._fail(f"corrupt safetensors header ({e.__class__.__name__})") from None
        if not isinstance(header, dict):
            raise self._fail("corrupt safetensors header (not an object)")
        data_start = 8 + header_len
        self.metadata = header.pop("__metadata__", None) or {}
        for name, entry in header.items():
            try:
                dtype = entry["dtype"]
                shape = tuple(int(d) for d in entry["shape"])
                begin, end = (int(x) for x in entry["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise self._fail(f"corrupt header entry for tensor '{name}'") from None
            if dtype not in KNOWN_DTYPES:
                raise self._fail(f"tensor '{name}' has unknown dtype {dtype}")
            info = TensorInfo(name, dtype, shape, data_start + begin, data_start + end)
            if dtype in READ_DTYPES and info.nbytes != info.numel * READ_DTYPES[dtype][1]:
                raise self._fail(f"tensor '{name}' byte range does not match its shape {list(shape)}")
            if info.end > size:
                raise self._fail(
                    f"truncated shard: tensor '{name}' ends at byte {info.end}, file has {size} bytes"
                )
            self.tensors[name] = info

    def read(self, name: str, fd: int | None = None) -> torch.Tensor:
        """Read one tensor into fresh memory, in its stored dtype and shape."""
        info = self.tensors[name]
        return self.read_rows(name, 0, info.rows, fd).reshape(info.shape)

    def read_rows(self, name: str, start: int, stop: int, fd: int | None = None,
                  into: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``start:stop`` (along the first dimension) of one tensor, into fresh memory, or into
        the front of ``into`` (a uint8 tensor at least that long; the result is a view of it)."""
        info = self.tensors[name]
        if info.dtype not in READ_DTYPES:
            raise self._fail(f"tensor '{name}' has unsupported dtype {info.dtype}")
        dtype, _ = READ_DTYPES[info.dtype]
        start, stop = max(0, start), min(stop, info.rows)
        row_bytes = info.row_nbytes
        nbytes = (stop - start) * row_bytes
        if into is not None and into.dtype == torch.uint8 and into.is_contiguous() and into.numel() >= nbytes:
            buf = into[:nbytes]
        else:
            buf = torch.empty(nbytes, dtype=torch.uint8)
        view = memoryview(buf.numpy())
        own = fd is None
        if own:
            fd = os.open(self.path, os.O_RDONLY)
        try:
            done = 0
            while done < nbytes:  # preadv may return short counts on large reads
                n = os.preadv(fd, [view[done:]], info.begin + start * row_bytes + done)
                if n <= 0:
                    raise self._fail(f"truncated while reading tensor '{name}'")
                done += n
        except OSError as e:
            raise self._fail(f"read error on tensor '{name}': {e.strerror}") from None
        finally:
            if own:
                os.close(fd)
        return buf.view(dtype).reshape(stop - start, *info.shape[1:])
