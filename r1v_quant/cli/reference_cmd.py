"""``r1v-quant reference``: the eval set through the source model, stored for later validation."""

from __future__ import annotations

from pathlib import Path

import typer

from ..calibrate.dataset import default_data_path, load_samples
from ..pipelines.reference import ReferenceOptions, compute_reference
from ..validate.reference_file import save_reference
from ..write.atomic import check_writable
from .console import MODEL_HELP, REVISION_HELP, ComputeDType, count_progress, err, open_model, print_json


def reference(
    model: str = typer.Argument(None, help=MODEL_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Reference file to write (.r1vref)."),
    data: Path = typer.Option(None, "--data", help="JSONL of {images, messages}; default: the shipped eval set."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: ComputeDType = typer.Option("float32", "--dtype", help="Compute dtype."),
    top_k: int = typer.Option(64, "--top-k", min=1, max=4096, help="Log-probabilities kept per position."),
    max_tiles: int = typer.Option(None, "--max-tiles", min=1, help="Tiles per image (default: config's max_dynamic_patch)."),
    batch_size: int = typer.Option(0, "--batch-size", min=0, help="Samples per pass over the weights (0: all)."),
    revision: str = typer.Option(None, "--revision", help=REVISION_HELP),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Run the eval set through the source model and store top-k log-probs, log-sum-exp and targets per position."""
    ckpt, _ = open_model(model, revision)
    data_path = data or default_data_path("eval")
    samples = load_samples(data_path)
    check_writable(out, force)
    opt = ReferenceOptions(device=device, dtype=dtype.value, top_k=top_k, max_tiles=max_tiles, batch_size=batch_size)
    with count_progress(not as_json) as progress:
        t_samples = progress.add_task("preparing samples", total=len(samples))
        t_units = progress.add_task("forward, unit by unit", total=None)
        ref = compute_reference(ckpt, samples, data_path, opt,
                                on_sample=lambda: progress.advance(t_samples),
                                on_unit=lambda unit: progress.update(t_units, advance=1, description=f"forward: {unit}"))
    save_reference(out, ref, overwrite=force)
    size = out.stat().st_size
    summary = {"out": str(out), "bytes": size, **ref.meta["counts"], "top_k": top_k,
               "bytes_per_position": ref.bytes_per_position(), "fingerprint": ref.meta["model"]["fingerprint"]}
    if as_json:
        print_json(summary)
    else:
        err.print(f"wrote {out}: {summary['samples']} samples, {summary['positions']} scored positions "
                  f"({summary['answer_positions']} in answers), {size / 1e6:.1f} MB")
