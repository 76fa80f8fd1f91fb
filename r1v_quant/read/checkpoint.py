"""The one checkpoint reader: a model folder, validated, walked one unit at a time.

Opening a checkpoint reads only metadata (config and shard headers: kilobytes
even for 77 GB), and checks it whole, so bad input fails in the first second
rather than an hour into a run.  Tensor data is read on demand, one unit (a
transformer layer, the embeddings, the projector, the LM head) at a time, so
walking the model never holds more than one unit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import InputError
from .config import ModelConfig, load_config
from .finite import check_finite
from .layout import COMPONENTS, UnitName, classify, expected_tensors, walk_order
from .safetensors_file import FLOAT_DTYPES, SafetensorsFile, TensorInfo

# What a unit's reader does to each tensor as soon as it is read (the engine: to the device, in its
# dtype), so the unit is never whole on the host before it moves: on a GPU the host holds one tensor.
Place = Callable[[torch.Tensor], torch.Tensor]

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass
class Unit:
    """The tensors of one unit, read from the shards."""

    name: str
    component: str
    layer: int | None
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


class Checkpoint:
    """A validated model folder.  Construct with :func:`open_checkpoint`."""

    def __init__(self, model_dir: Path, config: ModelConfig, shards: dict[str, SafetensorsFile],
                 locations: dict[str, str]):
        self.dir = model_dir
        self.config = config
        self.shards = shards  # file name -> parsed header
        self._where = locations  # tensor name -> shard file name
        self.units: dict[str, list[str]] = {}  # unit name -> tensor names, in file order
        self.unit_info: dict[str, UnitName] = {}
        for name in locations:
            u = classify(name)
            self.units.setdefault(u.name, []).append(name)
            self.unit_info[u.name] = u

    # --- metadata -------------------------------------------------------
    def info(self, name: str) -> TensorInfo:
        return self.shards[self._where[name]].tensors[name]

    @property
    def tensor_names(self) -> list[str]:
        return list(self._where)

    def unit_names(self, components: Iterable[str] = COMPONENTS) -> list[str]:
        """Present units in walk order, restricted to the given components."""
        wanted = set(components)
        return [u for u in walk_order(self.config) if u in self.units and self.unit_info[u].component in wanted]

    def unit_bytes(self, unit: str) -> int:
        return sum(self.info(n).nbytes for n in self.units[unit])

    # --- data -----------------------------------------------------------
    def read_tensor(self, name: str) -> torch.Tensor:
        if name not in self._where:
            raise InputError(f"{self.dir}: tensor '{name}' not in checkpoint")
        shard = self.shards[self._where[name]]
        t = shard.read(name)
        check_finite(shard.path, name, t)
        return t

    def read_rows(self, name: str, start: int, stop: int, into: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor (a big tensor read in blocks is never in memory whole);
        ``into``: a uint8 buffer to read into when it is long enough (the result is a view of it),
        which spares a reader of many blocks the page faults of fresh memory for each."""
        if name not in self._where:
            raise InputError(f"{self.dir}: tensor '{name}' not in checkpoint")
        shard = self.shards[self._where[name]]
        t = shard.read_rows(name, start, stop, into=into)
        check_finite(shard.path, name, t, first_row=start)
        return t

    def load_unit(self, unit: str, place: Place | None = None) -> Unit:
        u = self.unit_info[unit]
        out = Unit(unit, u.component, u.layer)
        # group by shard so each file is opened once per unit
        by_shard: dict[str, list[str]] = {}
        for name in self.units[unit]:
            by_shard.setdefault(self._where[name], []).append(name)
        for shard_name, names in by_shard.items():
            shard = self.shards[shard_name]
            fd = os.open(shard.path, os.O_RDONLY)
            try:
                for name in names:
                    t = shard.read(name, fd)
                    check_finite(shard.path, name, t)
                    out.tensors[name] = place(t) if place else t
                    del t
            finally:
                os.close(fd)
        return out

    def iter_units(self, components: Iterable[str] = COMPONENTS) -> Iterator[Unit]:
        """Yield units one at a time, in walk order; the caller drops each before the next."""
        for unit in self.unit_names(components):
            yield self.load_unit(unit)


def shard_map(model_dir: Path) -> dict[str, str]:
    """tensor name -> shard file name, from the index or the single file."""
    index = model_dir / INDEX_NAME
    if index.exists():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            weight_map = data["weight_map"]
            if not isinstance(weight_map, dict) or not weight_map:
                raise TypeError
        except PermissionError:
            raise InputError(f"{index}: permission denied") from None
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{index}: not a valid safetensors index (needs a non-empty weight_map)") from None
        return {str(k): str(v) for k, v in weight_map.items()}
    single = model_dir / SINGLE_NAME
    if single.exists():
        return {name: SINGLE_NAME for name in SafetensorsFile(single).tensors}
    if list(model_dir.glob("*.bin")) or list(model_dir.glob("*.pt")):
        raise InputError(f"{model_dir}: only PyTorch .bin weights found; convert to safetensors first")
    raise InputError(f"{model_dir}: no {INDEX_NAME} or {SINGLE_NAME} found")


def open_checkpoint(model_dir: str | os.PathLike[str], check_shapes: bool = True) -> Checkpoint:
    """Open and validate a model folder, reading metadata only."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise InputError(f"{model_dir}: no such directory")
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: not a directory")
    try:
        os.listdir(model_dir)
    except PermissionError:
        raise InputError(f"{model_dir}: permission denied (cannot list the directory)") from None
    config = load_config(model_dir)
    where = shard_map(model_dir)

    shards: dict[str, SafetensorsFile] = {}
    for shard_name in sorted(set(where.values())):
        path = model_dir / shard_name
        if not path.exists():
            listed = sum(1 for v in where.values() if v == shard_name)
            raise InputError(f"{path}: shard missing ({listed} tensors listed in the index)")
        shards[shard_name] = SafetensorsFile(path)
    for name, shard_name in where.items():
        shard = shards[shard_name]
        if name not in shard.tensors:
            raise InputError(f"{shard.path}: tensor '{name}' listed in the index but absent from the shard")
        dtype = shard.tensors[name].dtype
        if dtype not in FLOAT_DTYPES:
            raise InputError(
                f"{shard.path}: tensor '{name}' has non-float dtype {dtype} "
                "(expected BF16, F16 or F32; is the checkpoint already quantized?)"
            )

    ckpt = Checkpoint(model_dir, config, shards, where)
    if check_shapes:
        for name, shape in expected_tensors(config).items():
            if name not in where:
                raise InputError(f"{model_dir}: tensor '{name}' expected by config.json is missing")
            got = ckpt.info(name).shape
            if got != shape:
                raise InputError(
                    f"{shards[where[name]].path}: tensor '{name}' has shape {list(got)}, "
                    f"config.json implies {list(shape)}"
                )
    return ckpt
