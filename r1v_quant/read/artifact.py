"""Artifacts read back as models: what ``validate`` runs, from the artifact's own bytes only.

Every source of weights the forward engine can run presents the same face as
:class:`~r1v_quant.read.checkpoint.Checkpoint`: a typed ``config``, a folder for
side files, and ``load_unit(name)`` giving one unit's tensors in float, named as in
the source checkpoint.  So the engine (and everything built on it) runs a BF16
checkpoint, an AWQ folder (unpacked from ``qweight``/``qzeros``/``scales``) or a
GGUF pair (dequantized from its blocks) the same way, one unit at a time.

``open_artifact`` tells the three apart by what is on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import InputError
from .checkpoint import Unit
from .config import ModelConfig

CHECKPOINT, AWQ, GGUF = "checkpoint", "awq", "gguf"


class WeightSource(Protocol):
    kind: str
    dir: Path
    config: ModelConfig
    provenance: dict[str, Any]  # what the artifact says of its source (fingerprint, options); {} if nothing

    def unit_names(self) -> list[str]: ...

    def load_unit(self, unit: str) -> Unit: ...

    def files(self) -> list[Path]: ...


@dataclass
class CheckpointSource:
    """A plain (BF16/F16/F32) checkpoint, through the one checkpoint reader."""

    ckpt: Any
    kind: str = CHECKPOINT
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .fingerprint import fingerprint

        self.dir = self.ckpt.dir
        self.config = self.ckpt.config
        self.provenance = {"fingerprint": fingerprint(self.ckpt)}

    def unit_names(self) -> list[str]:
        return self.ckpt.unit_names()

    def load_unit(self, unit: str) -> Unit:
        return self.ckpt.load_unit(unit)

    def files(self) -> list[Path]:
        return sorted(s.path for s in self.ckpt.shards.values())


def check_finite(where: Path, name: str, t: torch.Tensor) -> None:
    """NaN/Inf in an artifact's weight makes every figure meaningless: refuse, naming the tensor."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise InputError(f"{where}: tensor '{name}' holds {bad} NaN/Inf value(s)")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    return data if isinstance(data, dict) else {}


def open_artifact(path: str | Path, mmproj: str | Path | None = None) -> WeightSource:
    """A BF16 checkpoint folder, an AWQ folder (config with ``quantization_config.quant_method``
    ``awq``) or a GGUF language-model file (with its mmproj: given, or ``mmproj-*.gguf`` beside it)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(f"{path}: not a GGUF file or a model folder")
        from .gguf_artifact import GgufArtifact

        return GgufArtifact(path, Path(mmproj) if mmproj else None)
    if mmproj is not None:
        raise InputError("--mmproj applies to a GGUF artifact only")
    quant = read_json(path / "config.json").get("quantization_config")
    if isinstance(quant, dict):
        method = str(quant.get("quant_method", "")).lower()
        if method != "awq":
            raise InputError(f"{path}: quantization method {method or 'unknown'!r} is not supported (AWQ only)")
        from .awq_artifact import AwqArtifact

        return AwqArtifact(path)
    from .checkpoint import open_checkpoint

    return CheckpointSource(open_checkpoint(path))
