"""``r1v-quant gguf``: the language model and the vision projector as GGUF files for llama.cpp."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from ..formats.gguf_mix import DEFAULT_MMPROJ_TYPE, FILE_TYPES, MMPROJ_CONVERTER_TYPES, MMPROJ_TYPES
from ..pipelines.gguf import export_gguf
from ..pipelines.imatrix import ImatrixOptions, compute_imatrix
from ..read.imatrix_file import load_imatrix
from ..write.atomic import check_writable
from ..write.gguf.plan import FilePlan, plan_export
from .console import MODEL_HELP, REVISION_HELP, byte_progress, err, open_model, out, print_json

FileTypeName = Enum("FileTypeName", {t: t for t in FILE_TYPES}, type=str)
MmprojTypeName = Enum("MmprojTypeName", {t: t for t in MMPROJ_TYPES}, type=str)

# Preformatted blocks (after \b) keep their line breaks: each line fits an 80-column terminal.
TYPES_HELP = """\
Write the language model (<Name>-<TYPE>.gguf, qwen2) and the vision tower and projector (mmproj-<Name>-<MMTYPE>.gguf, \
clip/internvl) as llama.cpp's own pipeline would (convert_hf_to_gguf.py, then llama-quantize): same tensors, types, \
metadata and bytes. Each file is written in one pass, blocks of rows read, encoded and written \
side by side on --threads, a few blocks in memory at a time.

\b
--type, the language model (norms and biases always stay F32):
  f32 f16 bf16  plain floats (what convert_hf_to_gguf.py writes)
  q8_0          8-bit blocks of 32 (~8.5 bits per weight)
  q6_k          6-bit K-quant (~6.6 bits per weight)
  q5_k_m        Q5_K, with Q6_K for output.weight and for attn_v
                and ffn_down in a third of the layers
  q4_k_m        the same mix over Q4_K (~4.9 bits per weight)
  iq4_xs        non-linear 4-bit, Q5_K attn_v (~4.4 bits per weight)
  iq4_nl        the same over IQ4_NL 32-blocks (~4.6 bits per weight)
  q3_k_m        Q3_K, Q4_K/Q5_K for attn_v, attn_output, ffn_down
                (~3.9 bits per weight)
  q3_k_s        Q3_K everywhere but output.weight (~3.5 bits)
  q2_k          Q2_K, Q3_K/Q4_K for attn_v, attn_output, ffn_down
                (~3.0 bits per weight)
  q4_0 .. q5_1  legacy 32-blocks, output.weight Q6_K
  (bits per weight: the 38B's language model, by `inspect`'s plan)
Rows that do not split into whole blocks fall back as
llama-quantize does (Q2_K and Q3_K to Q4_0, Q4_K to Q5_0, Q5_K to
Q5_1, Q6_K to Q8_0, IQ4_XS to IQ4_NL, then F16); the summary
lists them.

\b
--mmproj-type, the vision tower and the mlp1 projector:
  q8_0          the default: the 38B's Q4_K_M pair then fits one
                30 GB GPU at an 8k context
  f16           what llama.cpp's converter ships
  f32 bf16      plain floats
  q5_1 .. q4_0  smaller; llama.cpp loads them, has no tool for them
Position and class embeddings stay F32; the patch embedding is
F16 in an f16 file only, as the converter does.

\b
The position table (--roll-pos-embd, on by default): llama.cpp's
InternVL graph, up to the build this project installs (llama.cpp
0c1e57098, llama-cpp-python 0.3.36) and still in llama.cpp of
2026-08, appends the class token after the patches but adds the
position rows in checkpoint order, so every patch would get its
neighbour's position. The default stores the rows rolled (class
row last), which is right for those builds. --no-roll-pos-embd
keeps the converter's bytes: right for a llama.cpp that puts the
class token first, wrong for those builds.

\b
A ps_version v1 checkpoint's mmproj is refused unless --allow-v1:
llama.cpp knows only the v2 pixel-shuffle order, so its images
would arrive transposed.
"""


def _fallbacks(plan: FilePlan) -> list[dict]:
    """Tensors whose row length forced another type than the mix asks for (as llama-quantize does)."""
    return [{"tensor": t.gguf_name, "wanted": t.wanted.name, "got": t.qtype.name, "row": t.shape[-1]}
            for t in plan.fallbacks()]


def gguf(
    model: str = typer.Argument(None, help=MODEL_HELP, show_default=False),
    file_type: FileTypeName = typer.Option("q4_k_m", "--type", "-t", case_sensitive=False, metavar="TYPE",
                                           help="GGML type (mix) of the language model; see above."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Folder for the .gguf files (created if missing; "
                                                           "default: ./<Name>-GGUF).", show_default=False),
    mmproj_type: MmprojTypeName = typer.Option(DEFAULT_MMPROJ_TYPE, "--mmproj-type", case_sensitive=False,
                                               metavar="TYPE", help="Type of the vision projector file."),
    name: str = typer.Option(None, "--name", help="Model name: general.name and the file names (default: the "
                                                  "repo's or the folder's name)."),
    no_mmproj: bool = typer.Option(False, "--no-mmproj", help="Write only the language model."),
    no_llm: bool = typer.Option(False, "--no-llm", help="Write only the mmproj (e.g. to redo it with another "
                                                        "--mmproj-type)."),
    allow_v1: bool = typer.Option(False, "--allow-v1", help="Write the mmproj of a ps_version v1 checkpoint anyway "
                                                            "(llama.cpp will see its images transposed)."),
    roll_pos_embd: bool = typer.Option(
        True, "--roll-pos-embd/--no-roll-pos-embd",
        help="Store the position table for llama.cpp's InternVL graph (class row last; see above)."),
    imatrix: str = typer.Option("none", "--imatrix", metavar="FILE|auto|none",
                                help="Importance matrix to weigh the rounding with: a file (from `r1v-quant imatrix` "
                                     "or llama-imatrix), auto (measured first on the calibration set, images "
                                     "included, and written beside the .gguf files), or none."),
    imatrix_samples: int = typer.Option(128, "--imatrix-samples", min=1,
                                        help="Calibration samples for --imatrix auto."),
    threads: int = typer.Option(0, "--threads", min=0,
                                help="Threads reading, encoding and writing blocks of rows side by side, the "
                                     "same bytes with any count (0: one per core, as torch counts them)."),
    device: str = typer.Option("cpu", "--device", help="Where to encode: cpu, or cuda (the encoders give the same "
                                                       "bytes there)."),
    revision: str = typer.Option(None, "--revision", help=REVISION_HELP),
    force: bool = typer.Option(False, "--force", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    ckpt, ref = open_model(model, revision)
    name = name or ref.name
    out_dir = out_dir or Path(f"{name}-GGUF")
    plan = plan_export(ckpt, out_dir, file_type.value, mmproj_type.value, name, not no_mmproj, allow_v1, not no_llm,
                       has_imatrix=imatrix != "none")
    for p in plan.files:  # fail before drawing any progress
        check_writable(p.path, force)
    matrix = None
    if imatrix == "auto":
        matrix_path = out_dir / f"{plan.name}.imatrix.gguf"
        check_writable(matrix_path, force)
        with err.status("measuring the importance matrix") as status:
            compute_imatrix(ckpt, matrix_path, ImatrixOptions(samples=imatrix_samples, device=device), overwrite=force,
                            progress=lambda m: status.update(f"imatrix: {m}"))
        matrix = load_imatrix(matrix_path)
    elif imatrix != "none":
        matrix = load_imatrix(Path(imatrix))
    notes = []
    if plan.mmproj is not None and ckpt.config.ps_version == "v1":
        notes.append("ps_version v1 written with --allow-v1: llama.cpp will feed this model its images transposed")
    if plan.mmproj is not None and mmproj_type.value not in MMPROJ_CONVERTER_TYPES:
        notes.append(f"mmproj type {mmproj_type.value} is not one llama.cpp's converter writes (it loads it)")
    if plan.mmproj is not None and not roll_pos_embd:
        notes.append("position table in the converter's order: llama.cpp 0c1e57098 (what this project installs) "
                     "applies it off by one; see --help")
    t0 = time.monotonic()
    with byte_progress() as progress:
        tasks = {p.kind: progress.add_task(f"writing {p.path.name}", total=p.nbytes) for p in plan.files}
        export_gguf(ckpt, out_dir, overwrite=force, progress=lambda kind, _name, n: progress.advance(tasks[kind], n),
                    roll_position_embd=roll_pos_embd, device=device, threads=threads or None, plan=plan,
                    imatrix=matrix)
    seconds = time.monotonic() - t0
    summary = {
        "model": model or ref.name,
        "name": plan.name,
        "seconds": round(seconds, 1),
        "roll_pos_embd": roll_pos_embd,
        "imatrix": str(matrix.path) if matrix else None,
        "files": [{
            "kind": p.kind, "path": str(p.path), "type": p.type_name, "bytes": p.path.stat().st_size,
            "tensors": len(p.tensors), "params": p.params, "ggml_types": p.type_counts(), "fallbacks": _fallbacks(p),
        } for p in plan.files],
        "notes": notes,
    }
    if as_json:
        print_json(summary)
        return
    t = Table(title=f"GGUF for llama.cpp ({seconds:.0f} s)")
    for col in ("file", "type", "size", "tensors", "GGML types"):
        t.add_column(col, justify="right" if col in ("size", "tensors") else "left")
    for f in summary["files"]:
        t.add_row(f["path"], f["type"], f"{f['bytes'] / 1e6:,.1f} MB", str(f["tensors"]),
                  ", ".join(f"{k} x{v}" for k, v in f["ggml_types"].items()))
    out.print(t)
    for f in summary["files"]:
        for fb in f["fallbacks"]:
            err.print(f"fallback: {fb['tensor']} {fb['wanted']} -> {fb['got']} (rows of {fb['row']})")
    for n in notes:
        err.print(f"note: {n}")


gguf.__doc__ = TYPES_HELP
