"""``r1v-quant awq``: 4-bit AWQ of the language model, calibrated on images and text."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn)

from ..pipelines.awq import AWQRunOptions, quantize_model
from ..read.checkpoint import open_checkpoint
from ..write.atomic import check_writable
from .console import ComputeDType, err, print_json


class Propagate(str, Enum):
    quantized = "quantized"
    float = "float"


def awq(
    model: Path = typer.Argument(..., help="Source checkpoint folder (BF16)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (vLLM / LMDeploy quantization='awq')."),
    data: Path = typer.Option(None, "--data", help="Calibration JSONL of {images, messages}; default: the shipped set."),
    samples: int = typer.Option(128, "--samples", min=1, help="Calibration samples taken from the data."),
    seq_len: int = typer.Option(2048, "--seq-len", min=16, help="Tokens kept per sample (image slots included)."),
    max_tiles: int = typer.Option(4, "--max-tiles", min=1, help="Tiles per calibration image."),
    group_size: int = typer.Option(128, "--group-size", min=32, help="Input channels per quantization group."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: ComputeDType = typer.Option("float32", "--dtype", help="Compute dtype of forwards and searches."),
    propagate: Propagate = typer.Option(Propagate.float, "--propagate",
                                        help="Next layer's input from the float layer (default: lower KL in "
                                             "bench/bench_awq.py) or from the quantized one."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last finished layer."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the run's JSON report on stdout."),
) -> None:
    """Quantize every decoder linear to 4 bits (AWQ, zero point, GEMM packing); vision tower, projector,
    embeddings, norms and lm_head stay float16.  One decoder layer in memory at a time."""
    ckpt = open_checkpoint(model)
    check_writable(out, force)
    opt = AWQRunOptions(samples=samples, seq_len=seq_len, max_tiles=max_tiles, group_size=group_size,
                        device=device, dtype=dtype.value, propagate=propagate.value, data=str(data) if data else None)
    n_layers = ckpt.config.llm.num_layers
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=as_json) as progress:
        task = progress.add_task("calibration inputs", total=n_layers)

        def events(kind: str, d: dict) -> None:
            if kind == "unit":
                progress.update(task, description=f"calibration inputs: {d['unit']}")
            elif kind == "resume":
                progress.update(task, completed=d["layer"], description=f"resumed at layer {d['layer']}")
            elif kind == "layer_start":
                progress.update(task, description=f"layer {d['layer']}/{n_layers}: reading")
            elif kind == "step":
                progress.update(task, description=f"layer {d['layer']}/{n_layers}: {d['step']}")
            elif kind == "layer_done":
                progress.advance(task)
            elif kind == "assemble":
                progress.update(task, description="writing shards")

        summary = quantize_model(ckpt, out, opt, resume=resume, overwrite=force, events=events)
    for w in summary["fp16_warnings"]:
        err.print(f"[yellow]warning:[/] {w} (float16 limit 65504; vLLM serves AWQ in float16)")
    if as_json:
        print_json(summary)
    else:
        c = summary["calibration"]
        err.print(f"wrote {out}: {summary['layers']} layers, {len(summary['shards'])} shard(s); calibration "
                  f"{c.get('samples')} samples ({c.get('image_samples')} with images), {c.get('tokens')} tokens "
                  f"({c.get('image_tokens')} image); largest activation {summary['max_abs_activation']:.1f}")
