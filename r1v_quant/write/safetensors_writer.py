"""Sharded safetensors written one tensor at a time.

``safetensors.torch.save_file`` needs every tensor of a shard in memory at
once; a 5 GB shard of a 77 GB model would then cost 5 GB of RAM.  Here the
shard plan (names, dtypes, shapes) is fixed first, the header written, and each
tensor's bytes appended as it is produced.  The layout is the standard one
(8-byte header length, JSON header padded with spaces to 8 bytes, data), so
every safetensors reader loads the result.  Same inputs, same bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

DTYPE_TAGS: dict[torch.dtype, str] = {
    torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32",
    torch.int32: "I32", torch.int64: "I64", torch.int8: "I8", torch.uint8: "U8",
}
TAG_SIZES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I64": 8, "I8": 1, "U8": 1}


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = TAG_SIZES[DTYPE_TAGS[self.dtype]]
        for d in self.shape:
            n *= d
        return n


def plan_shards(tensors: Iterable[PlannedTensor], max_shard_bytes: int) -> list[list[PlannedTensor]]:
    """Split tensors, in order, into shards of at most ``max_shard_bytes`` (a lone bigger tensor gets its own)."""
    shards: list[list[PlannedTensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return [s for s in shards if s]


def shard_file_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def encode_header(tensors: list[PlannedTensor], metadata: dict[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": DTYPE_TAGS[t.dtype], "shape": list(t.shape),
                          "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


Produced = torch.Tensor | Iterable[torch.Tensor]


def write_shard(path: Path, tensors: list[PlannedTensor], produce: Callable[[PlannedTensor], Produced],
                metadata: dict[str, str] | None = None) -> None:
    """Write one shard; ``produce`` returns each planned tensor's data when its turn comes: the tensor,
    or its blocks of rows one after the other (so a big tensor never has to be in memory whole)."""
    with open(path, "wb") as f:
        f.write(encode_header(tensors, metadata or {"format": "pt"}))
        for t in tensors:
            data = produce(t)
            planned_rows = t.shape[0] if t.shape else 1
            rows = 0
            for block in [data] if isinstance(data, torch.Tensor) else data:
                rows += block.shape[0] if block.dim() else 1
                if block.dtype != t.dtype or tuple(block.shape[1:]) != tuple(t.shape[1:]) or rows > planned_rows:
                    raise ValueError(f"{t.name}: produced {block.dtype} {list(block.shape)}, planned {t.dtype} "
                                     f"{list(t.shape)}")
                block = block.detach().to("cpu").contiguous()
                f.write(memoryview(block.view(torch.uint8).reshape(-1).numpy()))
                del block  # before the next block is made, not after
            if rows != planned_rows:
                raise ValueError(f"{t.name}: produced {rows} rows, planned {list(t.shape)}")


def write_sharded(out_dir: Path, tensors: list[PlannedTensor], produce: Callable[[PlannedTensor], torch.Tensor],
                  max_shard_bytes: int, on_tensor: Callable[[PlannedTensor], None] | None = None) -> list[str]:
    """Write all shards and ``model.safetensors.index.json`` (when more than one shard)."""
    shards = plan_shards(tensors, max_shard_bytes)
    names = shard_file_names(len(shards))

    def produce_and_report(t: PlannedTensor) -> torch.Tensor:
        data = produce(t)
        if on_tensor:
            on_tensor(t)
        return data

    for name, shard in zip(names, shards):
        write_shard(out_dir / name, shard, produce_and_report)
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.nbytes for t in tensors)},
            "weight_map": {t.name: n for n, shard in zip(names, shards) for t in shard},
        }
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return names
