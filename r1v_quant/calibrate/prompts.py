"""Samples -> what the engine runs: the chat template, image tiles and slots, per sample.

Calibration, reference logits and validation all start here, with the source checkpoint's
tokenizer and image settings (:class:`~r1v_quant.engine.prompt.PromptBuilder`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..engine.prompt import Prepared, PromptBuilder
from ..read.checkpoint import Checkpoint
from .dataset import Sample


def prepare_samples(ckpt: Checkpoint, samples: Sequence[Sample], max_tiles: int | None,
                    on_sample: Callable[[], None] | None = None) -> list[Prepared]:
    builder = PromptBuilder(ckpt.dir, ckpt.config, max_tiles=max_tiles)
    out = []
    for s in samples:
        out.append(builder.prepare(s.id, s.messages, s.images, s.kind))
        if on_sample:
            on_sample()
    return out
