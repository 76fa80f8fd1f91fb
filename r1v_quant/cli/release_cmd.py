"""``r1v-quant release`` and ``r1v-quant verify``: the CI commands.

Progress goes to stderr: a live bar in a terminal; when stdout is not a terminal (CI logs, pipes)
plain lines instead, one per step and note, plus a status line at most every
``STATUS_EVERY`` seconds so a long step does not look hung.
"""

from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn)

from ..formats.gguf_mix import DEFAULT_MMPROJ_TYPE, MMPROJ_TYPES
from ..pipelines.release.manifest import VerifyFailed
from ..pipelines.release.manifest import verify as verify_release
from ..pipelines.release.plan import ReleaseOptions, parse_gguf_types
from ..pipelines.release.runner import ReleaseFailed, run_release
from ..pipelines.validate import RUNTIMES
from .awq_cmd import Propagate
from ..read.hub import resolve_model
from .console import MODEL_HELP, REVISION_HELP, ComputeDType, err, print_json

STATUS_EVERY = 30.0  # seconds between status lines in plain (non-terminal) mode

MmprojType = Enum("MmprojType", {t: t for t in MMPROJ_TYPES}, type=str)
Runtime = Enum("Runtime", {r: r for r in RUNTIMES}, type=str)


def interactive() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


class _Plain:
    """Events as plain, flushed lines on stderr (CI)."""

    def __init__(self) -> None:
        self.last_status = 0.0

    def __call__(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if kind == "status":
            if now - self.last_status < STATUS_EVERY:
                return
        self.last_status = now
        print(f"release: {text}", file=sys.stderr, flush=True)


class _Live:
    """Events on a rich progress bar over the steps."""

    def __init__(self, progress: Progress):
        self.p, self.task, self.step = progress, progress.add_task("release", total=None), ""

    def __call__(self, kind: str, text: str) -> None:
        if kind == "plan":  # "<n> steps: ..."
            self.p.update(self.task, total=int(text.split()[0]))
            self.p.console.print(text)
        elif kind == "step":
            self.step = text
            self.p.update(self.task, description=text)
        elif kind == "status":
            self.p.update(self.task, description=f"{self.step}: {text}")
        elif kind in ("done", "skip"):
            self.p.advance(self.task)
            self.p.console.print(text)
        else:
            self.p.console.print(text)


def release(
    model: str = typer.Argument(None, help=MODEL_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Release folder (manifest.json, artifacts, cards)."),
    awq: bool = typer.Option(False, "--awq", help="Build the AWQ folder (vLLM / LMDeploy)."),
    gguf: str = typer.Option(None, "--gguf", help="GGUF types of the language model, comma-separated "
                                                  "(e.g. q4_k_m,q5_k_m,q8_0); one shared mmproj."),
    mmproj_type: MmprojType = typer.Option(DEFAULT_MMPROJ_TYPE, "--mmproj-type", case_sensitive=False,
                                           help="Type of the mmproj (q8_0: the 38B's Q4_K_M pair fits 30 GB at 8k)."),
    name: str = typer.Option(None, "--name", help="Artifact name (default: the checkpoint folder's name)."),
    roll_pos_embd: bool = typer.Option(
        True, "--roll-pos-embd/--no-roll-pos-embd",
        help="Roll the mmproj's position table for llama.cpp's InternVL graph, which applies it off by one "
             "(see `r1v-quant gguf --help`); --no-roll-pos-embd keeps the converter's bytes."),
    data: Path = typer.Option(None, "--data", help="Eval JSONL for reference and validation (default: shipped)."),
    eval_samples: int = typer.Option(None, "--eval-samples", min=1,
                                     help="Use N eval samples: the first N/2 with images and N/2 without."),
    max_tiles: int = typer.Option(None, "--max-tiles", min=1, help="Tiles per eval image (default: config's)."),
    top_k: int = typer.Option(64, "--top-k", min=1, max=4096, help="Log-probabilities kept per reference position."),
    imatrix: str = typer.Option("auto", "--imatrix", metavar="FILE|auto|none",
                                help="GGUF importance matrix, shipped beside the .gguf files: auto (measured on "
                                     "the calibration set, images included), a file, or none."),
    calib_data: Path = typer.Option(None, "--calib-data",
                                    help="Calibration JSONL of AWQ and --imatrix auto (default: shipped)."),
    awq_samples: int = typer.Option(128, "--awq-samples", min=1, help="Calibration samples (AWQ, imatrix)."),
    awq_seq_len: int = typer.Option(2048, "--awq-seq-len", min=16, help="Tokens kept per calibration sample."),
    awq_max_tiles: int = typer.Option(4, "--awq-max-tiles", min=1, help="Tiles per calibration image."),
    awq_vision_fp16: bool = typer.Option(False, "--awq-vision-fp16",
                                         help="Keep the AWQ folder's vision tower in float16 (what LMDeploy loads)."),
    group_size: int = typer.Option(128, "--group-size", min=32, help="AWQ input channels per group."),
    propagate: Propagate = typer.Option(Propagate.float, "--propagate", help="See `r1v-quant awq --help`."),
    runtime: Runtime = typer.Option("engine", "--runtime", help="Validation runtime."),
    max_kl: float = typer.Option(0.10, "--max-kl", min=0.0, help="Gate: mean KL per prompt kind at most this."),
    min_top1: float = typer.Option(0.85, "--min-top1", min=0.0, max=1.0, help="Gate: top-1 agreement at least this."),
    max_ppl_ratio: float = typer.Option(1.10, "--max-ppl-ratio", min=0.0, help="Gate: answer perplexity ratio at most."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: ComputeDType = typer.Option("float32", "--dtype", help="Compute dtype."),
    threads: int = typer.Option(None, "--threads", min=1, help="torch threads for GGUF encoding and validation."),
    revision: str = typer.Option(None, "--revision", help=REVISION_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted release where it stopped."),
    force: bool = typer.Option(False, "--force", help="Replace an existing release in OUT."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Compute the reference once, build every requested artifact, validate each against the gates,
    and write a model card per artifact folder and OUT/manifest.json (sizes, sha256, validation figures,
    source fingerprint, data hashes, options).  Exit 1 when a gate fails (the artifact is kept, marked
    failed); exit 2 for unusable input or too little disk, before any work."""
    ref = resolve_model(model, revision)
    opt = ReleaseOptions(
        awq=awq, gguf=parse_gguf_types(gguf), mmproj_type=mmproj_type.value, name=name or ref.name, roll_pos_embd=roll_pos_embd,
        eval_data=data, eval_samples=eval_samples, max_tiles=max_tiles, top_k=top_k, calib_data=calib_data,
        awq_samples=awq_samples, awq_seq_len=awq_seq_len, awq_max_tiles=awq_max_tiles,
        awq_vision_fp16=awq_vision_fp16, imatrix=imatrix, group_size=group_size,
        propagate=propagate.value, runtime=runtime.value, max_kl=max_kl, min_top1=min_top1,
        max_ppl_ratio=max_ppl_ratio, device=device, dtype=dtype.value, threads=threads)
    if interactive():
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err) as progress:
            result = run_release(ref.path, out, opt, resume, force, _Live(progress))
    else:
        result = run_release(ref.path, out, opt, resume, force, _Plain())
    summary = result.summary()
    if as_json:
        print_json(summary)
    else:
        for k, a in sorted(summary["artifacts"].items()):
            err.print(f"{k}: {a['status']} ({out / a['dir']})")
        err.print(f"wrote {out / 'manifest.json'} in {summary['seconds']:.0f} s")
    if not result.passed:
        raise ReleaseFailed(f"validation gate failed for {', '.join(result.failed)}: kept in {out}, marked "
                            f"failed in {out / 'manifest.json'}")


def verify(
    dist: Path = typer.Argument(..., help="Release folder holding manifest.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Re-hash every file listed in DIST/manifest.json; exit 1 on a missing, altered or unlisted file,
    or when the release recorded a failed validation gate."""
    last = [0.0]

    def progress(rel: str, _n: int) -> None:
        now = time.monotonic()
        if not as_json and now - last[0] > STATUS_EVERY:
            last[0] = now
            print(f"verify: hashing {rel}", file=sys.stderr, flush=True)

    res = verify_release(dist, progress)
    if as_json:
        print_json(res.to_dict())
    for p in res.problems:
        print(f"verify: {p}", file=sys.stderr)
    if res.problems:
        raise VerifyFailed(f"{dist}: {len(res.problems)} problem(s) in {res.files} listed files (see above)")
    if res.failed_artifacts:
        raise VerifyFailed(f"{dist}: files intact, but the release records a failed validation gate for "
                           f"{', '.join(res.failed_artifacts)}")
    if not as_json:
        err.print(f"{dist}: {res.files} files, {res.bytes / 1e9:,.2f} GB, all match manifest.json")
