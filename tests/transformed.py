"""A model whose units pass through a function on their way to the engine (weights perturbed or replaced)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from r1v_quant.read import Unit
from r1v_quant.read.checkpoint import Place


class TransformedSource:
    """What the engine runs (``config`` + ``load_unit``): ``source``'s units, each through ``transform``."""

    def __init__(self, source: Any, transform: Callable[[Unit], Unit] | None):
        self.source, self.config, self.transform = source, source.config, transform

    def load_unit(self, name: str, place: Place | None = None) -> Unit:
        unit = self.source.load_unit(name)
        unit = self.transform(unit) if self.transform else unit
        if place:
            unit.tensors = {k: place(v) for k, v in unit.tensors.items()}
        return unit
