"""``r1v-quant validate``: an artifact against the BF16 reference, with a gate for CI."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from ..pipelines.validate import ValidateOptions, validate_artifact
from ..validate.report import FIGURES, Thresholds, ValidationReport
from ..read.hub import resolve_model
from .console import ComputeDType, err, out, print_json

HELP = """\
Run the reference's prompts through ARTIFACT and compare its next-token distributions with
the BF16 model's (the .r1vref file from `r1v-quant reference`), image and text prompts apart:
mean and 99th-percentile KL divergence, top-1 agreement, share of positions where the
reference's top token is outside the artifact's top 5, and the perplexity of the reference
answers (artifact / reference).

\b
ARTIFACT: an AWQ folder (from `r1v-quant awq`), a GGUF language-model
file (its mmproj beside it, or --mmproj), or a BF16/F16 checkpoint.
--runtime engine: the forward engine on the artifact's own weights
  (AWQ unpacked, GGUF dequantized; nothing from the source model).
--runtime llama.cpp: llama.cpp itself (GGUF only; needs the llama extra).

\b
Exit status: 0 all thresholds hold, 1 one fails (the table marks it),
2 unusable input (missing tensors, NaN/Inf weights, a reference from
another model).  Default thresholds suit real 38B-class models; the
random demo checkpoints need looser ones.
"""


class Runtime(str, Enum):
    engine = "engine"
    llama_cpp = "llama.cpp"


def _report_table(report: ValidationReport) -> Table:
    failed = {(c["group"], c["metric"]) for c in report.failures()}
    table = Table(title=f"{report.kind} artifact, runtime {report.runtime}")
    table.add_column("prompts")
    for _, title, _ in FIGURES:
        table.add_column(title, justify="right")
    for group, g in report.groups.items():
        cells = []
        for key, _, fmt in FIGURES:
            text = fmt.format(g[key])
            cells.append(f"[red]{text} FAIL[/red]" if (group, key) in failed else text)
        table.add_row(group, *cells)
    return table


def _per_layer_table(per_layer: dict, stack: str = "llm") -> Table:
    # no vertical rules and no "_proj" suffix: nine columns of figures fit an 80-column terminal
    linears, rows, what = ((per_layer["projections"], per_layer["layers"], "decoder layer") if stack == "llm" else
                           (per_layer["vision_linears"], per_layer["vision_layers"], "vision layer"))
    table = Table(title=f"per {what}: weight error of each linear, output error (relative)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("layer", justify="right")
    for p in linears:
        table.add_column(p.removesuffix("_proj"), justify="right")
    table.add_column("output", justify="right")
    for row in rows:
        table.add_row(str(row["layer"]), *(f"{row['weight_error'][p]:.4f}" for p in linears),
                      f"{row['output_error']:.4f}")
    return table


def validate(
    artifact: str = typer.Argument(..., help="AWQ folder, GGUF language-model file, or BF16 checkpoint folder (or "
                                             "a Hugging Face repo id of one)."),
    reference: Path = typer.Option(..., "--reference", "-r", help="Reference file (.r1vref) of the source model."),
    runtime: Runtime = typer.Option(Runtime.engine, "--runtime", help="engine (default) or llama.cpp (GGUF only)."),
    mmproj: Path = typer.Option(None, "--mmproj", help="GGUF vision file (default: the mmproj-*.gguf beside ARTIFACT)."),
    data: Path = typer.Option(None, "--data", help="Eval data the reference was made from (default: the shipped set)."),
    device: str = typer.Option("cpu", "--device", help="Engine device: cpu, cuda, cuda:1, ..."),
    dtype: ComputeDType = typer.Option("float32", "--dtype", help="Engine compute dtype."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads (default: all)."),
    max_kl: float = typer.Option(Thresholds.max_kl, "--max-kl", help="Fail when mean KL exceeds this."),
    min_top1: float = typer.Option(Thresholds.min_top1, "--min-top1", help="Fail when top-1 agreement is below this."),
    max_ppl_ratio: float = typer.Option(Thresholds.max_ppl_ratio, "--max-ppl-ratio",
                                        help="Fail when answer perplexity / reference's exceeds this."),
    per_layer: bool = typer.Option(False, "--per-layer", help="Also diagnose each decoder layer (needs --source)."),
    source: str = typer.Option(None, "--source", help="The BF16 checkpoint the artifact was made from (--per-layer): "
                                                      "a folder or a repo id."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit of a repo id ARTIFACT."),
    plot: Path = typer.Option(None, "--plot", help="PNG for --per-layer (default: ./<artifact>-per-layer.png)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON on stdout."),
) -> None:
    hub = None if Path(artifact).exists() else resolve_model(artifact, revision)  # a repo id
    path, name = (Path(artifact), Path(artifact).name) if hub is None else (hub.path, hub.name)
    source_path = resolve_model(source).path if source else None
    opt = ValidateOptions(runtime=runtime.value, mmproj=mmproj, data=data, device=device, dtype=dtype.value,
                          threads=threads, thresholds=Thresholds(max_kl, min_top1, max_ppl_ratio),
                          per_layer=per_layer, source=source_path,
                          plot=plot or (Path(f"{name}-per-layer.png") if per_layer else None))
    with err.status("validating") as status:
        report = validate_artifact(path, reference, opt, progress=lambda msg: status.update(f"validating: {msg}"))
    if as_json:
        print_json(report.to_dict())
    else:
        out.print(_report_table(report))
        if "per_layer" in report.info:
            pl = report.info["per_layer"]
            out.print(_per_layer_table(pl))
            if pl.get("vision_layers"):
                out.print(_per_layer_table(pl, "vision"))
            out.print("plot: " + ", ".join(pl[k] for k in ("plot", "vision_plot") if k in pl))
        if not report.info["fingerprint_checked"]:
            err.print("warning: the artifact records no source fingerprint; the reference was matched by "
                      "vocabulary, tiles and image slots only")
        for c in report.failures():
            err.print(f"FAIL {c['group']} {c['metric']} = {c['value']:.4f} (limit {c['op']} {c['limit']})")
        err.print("PASS" if report.passed else "FAILED")
    if not report.passed:
        raise typer.Exit(1)


validate.__doc__ = HELP
