"""``dist/.release/state.json``: the run's key and one record per finished step, for ``--resume``.

Written with a rename after every step, so a killed run leaves either the old or the new state,
never half of one.  A step's record holds what later steps and the manifest need (file hashes,
build summaries, validation figures), so a resumed run never re-reads or re-hashes finished work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...errors import InputError


class State:
    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "state.json"
        self.key: dict[str, Any] = {}
        self.steps: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, folder: Path) -> State | None:
        st = cls(folder)
        try:
            data = json.loads(st.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{st.path}: unreadable release state ({e}); run with --force to start over") from None
        st.key, st.steps = data.get("key", {}), data.get("steps", {})
        return st

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps({"key": self.key, "steps": self.steps}, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def done(self, step: str) -> bool:
        return step in self.steps

    def file(self, rel: str) -> dict[str, Any]:
        """The bytes and sha256 a finished step recorded for ``rel`` (a path relative to dist/)."""
        for rec in self.steps.values():
            if rel in rec.get("files", {}):
                return rec["files"][rel]
        raise KeyError(rel)

    def record(self, step: str, data: dict[str, Any]) -> None:
        self.steps[step] = data
        self.save()
