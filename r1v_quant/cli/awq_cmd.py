"""``r1v-quant awq``: 4-bit AWQ of the language model, calibrated on images and text."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..engine.runner import COMPUTE_DTYPES
from ..pipelines.awq import AWQRunOptions, kept, quantize_model
from ..pipelines.awq_plan import human
from ..errors import InputError, Interrupted
from ..write.awq_export import WorkDir
from ..write.atomic import check_writable
from .console import (MODEL_HELP, REVISION_HELP, count_progress, err, open_model, print_json,
                      CalibData, CalibMaxTiles, CalibSamples, CalibSeqLen)


class Propagate(str, Enum):
    quantized = "quantized"
    float = "float"


AwqDType = Enum("AwqDType", {name: name for name in ("auto", *COMPUTE_DTYPES)}, type=str)


def plan_table(plan: dict[str, Any]) -> Table:
    """The plan's steps, and the buffers of the step where host memory peaks."""
    c = plan["calibration"]
    t = Table(title=f"awq plan: {c['samples']} samples, {c['tokens']:,} tokens ({c['image_tokens']:,} image, "
                    f"{c['tiles']} tiles), chunks of {plan['chunk_tokens']:,}")
    for col in ("step", "host", "device"):
        t.add_column(col, justify="left" if col == "step" else "right")

    def cells(host: int, device: int) -> tuple[str, str]:
        return human(plan["base_host_bytes"] + host), human(device) if device else "-"

    for step in plan["steps"]:
        t.add_row(step["step"], *cells(step["host_bytes"], step["device_bytes"]))
    peak = next(s for s in plan["steps"] if s["step"] == plan["peak_step"])
    for b in sorted(peak["buffers"], key=lambda b: -(b["host"] + b["device"])):
        t.add_row(f"  {b['what']}", human(b["host"]) if b["host"] else "", human(b["device"]) if b["device"] else "",
                  style="dim")
    t.add_row("  the process before the run", human(plan["base_host_bytes"]), "", style="dim")
    t.add_row("peak", human(plan["peak_host_bytes"]), human(plan["peak_device_bytes"]) if plan["peak_device_bytes"]
              else "-", style="bold")
    vision = (f", {plan['flops_per_vision_layer'] / 1e12:,.2f} per vision layer ({plan['vision_layers']})"
              if plan["vision_layers"] else "")
    t.caption = (f"{plan['flops_per_layer'] / 1e12:,.2f} TFLOP per decoder layer ({plan['layers']}){vision}, "
                 f"{plan['flops_total'] / 1e15:,.3f} PFLOP in all; host includes the process before the run")
    return t


def parse_layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(x) for x in text.replace(" ", "").split(",") if x}))
    except ValueError:
        raise InputError(f"--vision-fp16-layers: expected layer numbers like 0,44, got {text!r}") from None


def awq(
    model: str = typer.Argument(None, help=MODEL_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (vLLM / LMDeploy quantization='awq')."),
    data: CalibData = None,
    samples: CalibSamples = 128,
    seq_len: CalibSeqLen = 2048,
    max_tiles: CalibMaxTiles = 4,
    group_size: int = typer.Option(128, "--group-size", min=32, help="Input channels per quantization group."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: AwqDType = typer.Option("auto", "--dtype",
                                   help="Compute dtype of forwards and searches: auto = bfloat16 on a GPU (losses "
                                        "summed in float32), float32 on the CPU."),
    chunk_tokens: int = typer.Option(0, "--chunk-tokens", min=0,
                                     help="Calibration tokens whose activations are held at once (0: 4096 on the "
                                          "CPU, 16384 on a GPU); memory per token does not depend on it."),
    offload: bool = typer.Option(False, "--offload", help="Keep the activations between layers in host "
                                                          "memory instead of on the GPU."),
    vision_fp16: bool = typer.Option(False, "--vision-fp16",
                                     help="Keep the vision tower in float16 (LMDeploy loads only this variant; "
                                          "vLLM loads both). Default: quantized too, which the 38B needs to fit "
                                          "one 30 GB GPU."),
    vision_fp16_layers: str = typer.Option("", "--vision-fp16-layers", metavar="N,N,...",
                                           help="Vision layers to keep in float16 while the rest is quantized."),
    propagate: Propagate = typer.Option(Propagate.float, "--propagate",
                                        help="Next layer's input from the float layer (default: lower KL in "
                                             "bench/bench_awq.py) or from the quantized one."),
    revision: str = typer.Option(None, "--revision", help=REVISION_HELP),
    plan: bool = typer.Option(False, "--plan", help="Print the plan (tokens, peak memory, FLOPs) and stop."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last finished layer."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the run's JSON report on stdout."),
) -> None:
    """Quantize every linear of the language model and of the vision tower to 4 bits (AWQ, zero point,
    GEMM packing), calibrated on images and text; projector, embeddings, norms and lm_head stay float16
    (--vision-fp16 keeps the vision tower too).  One layer in memory at a time; the run is planned first
    and refused (exit 2, naming options that fit) when it would not fit in memory."""
    ckpt, _ = open_model(model, revision)
    if not plan:
        check_writable(out, force)
    opt = AWQRunOptions(samples=samples, seq_len=seq_len, max_tiles=max_tiles, group_size=group_size,
                        device=device, dtype=dtype.value, propagate=propagate.value, data=str(data) if data else None,
                        chunk_tokens=chunk_tokens, offload=offload, vision=not vision_fp16,
                        vision_fp16_layers=parse_layers(vision_fp16_layers))
    n_layers = ckpt.config.llm.num_layers + (0 if vision_fp16 else ckpt.config.vision.num_layers)
    with count_progress(not (as_json or plan)) as progress:
        task = progress.add_task("preparing calibration samples", total=n_layers)

        def events(kind: str, d: dict) -> None:
            if kind == "plan" and not as_json:
                progress.console.print(plan_table(d))
            elif kind == "unit":
                progress.update(task, description=f"calibration inputs: {d['unit']}")
            elif kind == "resume":
                progress.update(task, completed=d["layer"], description=f"resumed at layer {d['layer']}")
            elif kind == "layer_start":
                progress.update(task, description=f"{d['unit']}: reading")
            elif kind == "step":
                progress.update(task, description=f"{d['unit']}: {d['step']}")
            elif kind == "layer_done":
                progress.advance(task)
            elif kind == "assemble":
                progress.update(task, description="writing shards")

        try:
            summary = quantize_model(ckpt, out, opt, resume=resume, overwrite=force, events=events, plan_only=plan)
        except KeyboardInterrupt:
            work = WorkDir(out)
            if work.path.is_dir() and (work.state() or {}).get("done"):
                raise Interrupted(f"interrupted; {kept(work)}") from None
            raise
    if plan:
        if as_json:
            print_json(summary)
        return
    for w in summary["fp16_warnings"]:
        err.print(f"[yellow]warning:[/] {w} (float16 limit 65504; vLLM serves AWQ in float16)")
    if as_json:
        print_json(summary)
    else:
        c = summary["calibration"]
        err.print(f"wrote {out}: {summary['layers']} layers, {len(summary['shards'])} shard(s); calibration "
                  f"{c.get('samples')} samples ({c.get('image_samples')} with images), {c.get('tokens')} tokens "
                  f"({c.get('image_tokens')} image); largest activation {summary['max_abs_activation']:.1f}")
