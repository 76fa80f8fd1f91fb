"""``imatrix``: an importance matrix from the calibration set, images included, in llama.cpp's format.

The calibration samples are prepared as for ``awq`` (images tiled, each sample cut to ``seq_len``
tokens) and run through the engine unit by unit with every linear's input summed as it goes by
(:class:`~r1v_quant.calibrate.imatrix.ImatrixCollector`): the vision tower and ``mlp1`` over the image
tiles, the language model over all tokens, and the LM head's input (the final norm) at the end, at
the positions whose logits are read (next token text, not an image slot).
``text_only`` keeps the samples without images and skips the vision tower: what ``llama-imatrix``
can measure, for comparison.

``balance``: "prompts" (the default) weighs the samples with images and those without alike in the
language model's entries (see :mod:`r1v_quant.calibrate.imatrix`); "tokens" sums every token alike,
as ``llama-imatrix`` does, so the image positions, most of a multimodal sample, dominate.  Measured
in llama.cpp (``bench/bench_imatrix.py``, README; tiny model, matrices from three calibration windows):
against the text-only matrix on image prompts, both win on Q4_K_M, neither on IQ4_XS or Q3_K_M.
Layer by layer (``bench/bench_imatrix_layers.py``) the "prompts" matrix does lower the linears' mean
output error at image prompts' image positions and answers, for all three types: the end-to-end loss
comes from how errors travel through that random model, not from what the matrix measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..calibrate.dataset import data_hash, default_data_path, load_samples
from ..calibrate.imatrix import LM_HEAD, ImatrixCollector
from ..calibrate.prompts import prepare_samples
from ..engine import Engine, EngineOptions
from ..engine.llm import head_input
from ..engine.runner import COMPUTE_DTYPES
from ..errors import InputError
from ..read.checkpoint import Checkpoint
from ..read.layout import LLM
from ..write.imatrix_file import write_imatrix


@dataclass
class ImatrixOptions:
    data: Path | None = None  # default: the shipped calibration set
    samples: int = 128
    seq_len: int = 2048
    max_tiles: int = 4
    text_only: bool = False
    balance: str = "prompts"  # one of BALANCES
    device: str = "cpu"
    dtype: str = "float32"


BALANCES = ("prompts", "tokens")
Progress = Callable[[str], None]


def compute_imatrix(ckpt: Checkpoint, out: Path, opt: ImatrixOptions, overwrite: bool = False,
                    progress: Progress | None = None) -> dict[str, Any]:
    say = progress or (lambda msg: None)
    if opt.balance not in BALANCES:
        raise InputError(f"unknown balance {opt.balance!r}: one of {', '.join(BALANCES)}")
    data = Path(opt.data) if opt.data else default_data_path("calib")
    samples = load_samples(data)
    if opt.text_only:
        samples = [s for s in samples if not s.images]
    samples = samples[: opt.samples]
    if not samples:
        raise InputError(f"{data}: no {'text-only ' if opt.text_only else ''}samples to measure with")
    say(f"preparing {len(samples)} samples")
    prepared = prepare_samples(ckpt, samples, opt.max_tiles)
    collector = ImatrixCollector()
    engine = Engine(ckpt, EngineOptions(device=opt.device, dtype=COMPUTE_DTYPES[opt.dtype]),
                    progress=lambda unit: say(f"unit {unit}"), on_linear_input=collector.hook)
    with torch.no_grad():
        states = engine.embed(prepared, max_tokens=opt.seq_len)
        if opt.balance == "prompts":
            collector.balance(["image" if p.has_image else "text" for p in prepared], [x.shape[1] for x in states])
        hidden = engine.walk(LLM, states)
        del states
        head = engine.load("llm.head")
        for x, p in zip(hidden, prepared):  # what output.weight multiplies, where its logits are read
            collector.hook(LM_HEAD, head_input(ckpt.config, head, x), rows=p.predicts_text()[: x.shape[1]])
    entries = collector.entries()
    tokens = sum(int(x.shape[1]) for x in hidden)
    kind = "text only" if opt.text_only else f"images and text, {opt.balance} alike"
    name = f"{data.name} ({kind}, sha256 {data_hash(data)[:12]})"
    write_imatrix(out, entries, [name], chunk_count=len(prepared), chunk_size=opt.seq_len, overwrite=overwrite)
    return {"out": str(out), "entries": len(entries), "samples": len(prepared), "tokens": tokens,
            "image_samples": sum(p.has_image for p in prepared), "dataset": name, "balance": opt.balance,
            "vision_entries": sum(n.startswith(("v.", "mm.")) for n in entries)}
