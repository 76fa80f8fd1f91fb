"""Shared console output: results on stdout, progress and messages on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

out = Console()  # results (tables); stdout
err = Console(stderr=True)  # progress bars, warnings


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def byte_progress(enabled: bool = True) -> Progress:
    """A progress bar over bytes with ETA; drawn on stderr, silent when ``enabled`` is False."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, disable=not enabled, transient=False,
    )
