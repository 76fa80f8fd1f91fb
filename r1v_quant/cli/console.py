"""Shared console output: results on stdout, progress and messages on stderr."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from ..engine.runner import COMPUTE_DTYPES
from ..read.checkpoint import Checkpoint, open_checkpoint
from ..read.hub import DEFAULT_MODEL, ModelRef, resolve_model

# results (tables) on stdout; when that is a log or a pipe rather than a terminal, rich would assume 80
# columns and cut wide tables' figures, so it gets room for them
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)  # progress bars, warnings


# --dtype of every command that runs the engine
ComputeDType = Enum("ComputeDType", {name: name for name in COMPUTE_DTYPES}, type=str)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def byte_progress(enabled: bool = True) -> Progress:
    """A progress bar over bytes with ETA; drawn on stderr, silent when ``enabled`` is False."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, disable=not enabled, transient=False,
    )


def count_progress(enabled: bool) -> Progress:
    """A progress bar over counted steps with ETA; drawn on stderr, silent when ``enabled`` is False."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, disable=not enabled)


MODEL_HELP = ("Checkpoint: a local folder, or a Hugging Face repo id (from the cache; downloaded when online). "
              f"Default: {DEFAULT_MODEL}.")
REVISION_HELP = "Branch, tag or commit of a repo id."

# the calibration set, as `awq` and `imatrix` both take it (one definition, so the two cannot drift)
CalibData = Annotated[Path | None, typer.Option(
    "--data", help="Calibration JSONL of {images, messages}; default: the shipped set.")]
CalibSamples = Annotated[int, typer.Option("--samples", min=1, help="Calibration samples taken from the data.")]
CalibSeqLen = Annotated[int, typer.Option("--seq-len", min=16, help="Tokens kept per sample (image slots included).")]
CalibMaxTiles = Annotated[int, typer.Option("--max-tiles", min=1, help="Tiles per calibration image.")]


def open_model(model: str | None, revision: str | None) -> tuple[Checkpoint, ModelRef]:
    """MODEL as the user gave it (folder or repo id), opened and checked."""
    ref = resolve_model(model, revision)
    return open_checkpoint(ref.path), ref
