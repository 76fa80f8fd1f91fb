"""Artifacts read back as models: what ``validate`` runs, from the artifact's own bytes only.

``open_artifact`` tells a BF16 checkpoint, an AWQ folder and a GGUF pair apart by what is on disk
and returns the matching :class:`~r1v_quant.read.sources.WeightSource`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .awq_artifact import AwqArtifact
from .checkpoint import open_checkpoint
from .files import read_json_object
from .gguf_artifact import GgufArtifact
from .sources import CheckpointSource, WeightSource


def open_artifact(path: str | Path, mmproj: str | Path | None = None) -> WeightSource:
    """A BF16 checkpoint folder, an AWQ folder (config with ``quantization_config.quant_method``
    ``awq``) or a GGUF language-model file (with its mmproj: given, or ``mmproj-*.gguf`` beside it)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(f"{path}: not a GGUF file or a model folder")
        return GgufArtifact(path, Path(mmproj) if mmproj else None)
    if mmproj is not None:
        raise InputError("--mmproj applies to a GGUF artifact only")
    quant = read_json_object(path / "config.json").get("quantization_config")
    if isinstance(quant, dict):
        method = str(quant.get("quant_method", "")).lower()
        if method != "awq":
            raise InputError(f"{path}: quantization method {method or 'unknown'!r} is not supported (AWQ only)")
        return AwqArtifact(path)
    return CheckpointSource(open_checkpoint(path))
