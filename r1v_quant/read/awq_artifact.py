"""An AWQ folder (AutoAWQ GEMM layout, as vLLM and LMDeploy load it) read back as float weights.

Each packed linear (``qweight`` int32 [K, N/8], ``qzeros`` int32 [K/G, N/8],
``scales`` float16 [K/G, N]) is unpacked by the same code that packed it
(:mod:`r1v_quant.formats.awq_gemm`, itself checked against AutoAWQ's unpacker) and
dequantized to ``(q - zero) * scale``; every other tensor is taken as stored.  The
folder must hold every tensor its ``config.json`` implies (as ``.weight`` or as the
packed triple); nothing is taken from the source checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..formats.awq_gemm import dequantize, unpack_gemm
from .checkpoint import Place, Unit, shard_map
from .config import ModelConfig, load_config
from .files import read_json_object
from .layout import classify, expected_tensors, walk_order
from .safetensors_file import SafetensorsFile
from .finite import check_finite
from .sources import AWQ

PACKED = (".qweight", ".qzeros", ".scales")
SUPPORTED = {"bits": 4, "version": "gemm", "zero_point": True}
SUMMARY_FILE = "r1v_quant_awq.json"


class AwqArtifact:
    kind = AWQ

    def __init__(self, path: Path):
        self.dir = Path(path)
        self.config: ModelConfig = load_config(self.dir)
        quant: dict[str, Any] = self.config.raw["quantization_config"]
        for key, want in SUPPORTED.items():
            got = quant.get(key, want if key == "zero_point" else None)
            if str(got).lower() != str(want).lower():
                raise InputError(f"{self.dir / 'config.json'}: quantization_config.{key} is {got!r}; "
                                 f"only {key}={want!r} AWQ is supported")
        self.group_size = int(quant.get("group_size", 128))
        where = shard_map(self.dir)
        self.shards: dict[str, SafetensorsFile] = {}
        for shard_name in sorted(set(where.values())):
            p = self.dir / shard_name
            if not p.exists():
                raise InputError(f"{p}: shard missing")
            self.shards[shard_name] = SafetensorsFile(p)
        self._where = where
        # logical (checkpoint) name -> stored names: one plain tensor or a packed triple
        self.logical: dict[str, tuple[str, ...]] = {}
        for name in where:
            if name.endswith(".qweight"):
                base = name.removesuffix(".qweight")
                parts = tuple(base + s for s in PACKED)
                missing = [p for p in parts if p not in where]
                if missing:
                    raise InputError(f"{self.dir}: packed linear '{base}' has no '{missing[0]}'")
                self.logical[base + ".weight"] = parts
            elif not name.endswith((".qzeros", ".scales")):
                self.logical[name] = (name,)
        self._check_complete()
        self.units: dict[str, list[str]] = {}
        for name in self.logical:
            self.units.setdefault(classify(name).name, []).append(name)
        self.provenance = read_json_object(self.dir / SUMMARY_FILE).get("source", {})

    def _shape(self, name: str) -> tuple[int, ...]:
        stored = self.logical[name]
        info = self.shards[self._where[stored[0]]].tensors[stored[0]]
        if len(stored) == 1:
            return info.shape
        k, n8 = info.shape
        return (n8 * 8, k)

    def _check_complete(self) -> None:
        for name, shape in expected_tensors(self.config).items():
            if name not in self.logical:
                raise InputError(f"{self.dir}: tensor '{name}' (implied by config.json) is missing")
            if self._shape(name) != shape:
                raise InputError(f"{self.dir}: tensor '{name}' has shape {list(self._shape(name))}, "
                                 f"config.json implies {list(shape)}")

    def unit_names(self) -> list[str]:
        return [u for u in walk_order(self.config) if u in self.units]

    def _read(self, name: str, fds: dict[str, int]) -> torch.Tensor:
        shard = self._where[name]
        if shard not in fds:
            fds[shard] = os.open(self.shards[shard].path, os.O_RDONLY)
        t = self.shards[shard].read(name, fds[shard])
        check_finite(self.shards[shard].path, name, t)
        return t

    def load_unit(self, unit: str, place: Place | None = None) -> Unit:
        info = classify(self.units[unit][0])
        out = Unit(unit, info.component, info.layer)
        fds: dict[str, int] = {}
        try:
            for name in self.units[unit]:
                stored = [self._read(n, fds) for n in self.logical[name]]
                try:
                    t = stored[0] if len(stored) == 1 else dequantize(*unpack_gemm(*stored), self.group_size)
                except ValueError as e:
                    raise InputError(f"{self.dir}: packed linear '{name.removesuffix('.weight')}': {e}") from None
                out.tensors[name] = place(t) if place else t
                del stored, t  # before the next read
        finally:
            for fd in fds.values():
                os.close(fd)
        return out

    def files(self) -> list[Path]:
        return sorted(s.path for s in self.shards.values())
