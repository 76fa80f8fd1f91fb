"""Running the CLI in-process, with what it printed."""

from __future__ import annotations

import pytest

from r1v_quant.cli.app import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``r1v-quant ARGS`` in this process: (exit code, stdout, stderr), earlier output discarded."""
    capsys.readouterr()
    rc = main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err
