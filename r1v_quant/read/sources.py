"""What the forward engine runs: anything that hands out a model's units as float tensors.

Every source of weights presents the same face as :class:`~r1v_quant.read.checkpoint.Checkpoint`:
a typed ``config``, a folder for side files, and ``load_unit(name)`` giving one unit's tensors in
float, named as in the source checkpoint.  So the engine (and everything built on it) runs a BF16
checkpoint, an AWQ folder (:mod:`.awq_artifact`) or a GGUF pair (:mod:`.gguf_artifact`) the same
way, one unit at a time; :func:`~r1v_quant.read.artifact.open_artifact` tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


from .checkpoint import Checkpoint, Place, Unit
from .config import ModelConfig
from .fingerprint import fingerprint

CHECKPOINT, AWQ, GGUF = "checkpoint", "awq", "gguf"


class UnitSource(Protocol):
    """What the forward engine needs: the config and one unit at a time (a Checkpoint is one)."""

    config: ModelConfig

    def load_unit(self, unit: str, place: Place | None = None) -> Unit: ...


class WeightSource(UnitSource, Protocol):
    kind: str
    dir: Path
    provenance: dict[str, Any]  # what the artifact says of its source (fingerprint, options); {} if nothing

    def unit_names(self) -> list[str]: ...

    def files(self) -> list[Path]: ...


@dataclass
class CheckpointSource:
    """A plain (BF16/F16/F32) checkpoint, through the one checkpoint reader."""

    ckpt: Checkpoint
    kind: str = CHECKPOINT
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = self.ckpt.dir
        self.config = self.ckpt.config
        self.provenance = {"fingerprint": fingerprint(self.ckpt)}

    def unit_names(self) -> list[str]:
        return self.ckpt.unit_names()

    def load_unit(self, unit: str, place: Place | None = None) -> Unit:
        return self.ckpt.load_unit(unit, place)

    def files(self) -> list[Path]:
        return sorted(s.path for s in self.ckpt.shards.values())


