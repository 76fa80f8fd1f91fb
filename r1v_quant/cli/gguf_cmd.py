"""``r1v-quant gguf``: the language model and the vision projector as GGUF files for llama.cpp."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from ..formats.gguf_mix import FILE_TYPES, MMPROJ_CONVERTER_TYPES, MMPROJ_TYPES
from ..pipelines.gguf import export_gguf
from ..read.checkpoint import open_checkpoint
from ..write.atomic import check_writable
from ..write.gguf.plan import FilePlan, plan_export
from .console import byte_progress, err, out, print_json

FileTypeName = Enum("FileTypeName", {t: t for t in FILE_TYPES}, type=str)
MmprojTypeName = Enum("MmprojTypeName", {t: t for t in MMPROJ_TYPES}, type=str)

TYPES_HELP = """\
Write the language model (<Name>-<TYPE>.gguf, qwen2) and the vision tower + projector
(mmproj-<Name>-<MMTYPE>.gguf, clip/internvl) as llama.cpp's own pipeline would
(convert_hf_to_gguf.py, then llama-quantize): same tensors, types, metadata and bytes.
Each file is written in one streamed pass, one tensor in memory at a time.

\b
--type (language model; norms and biases always stay F32):
  f32, f16, bf16  plain floats (what convert_hf_to_gguf.py --outtype writes)
  q8_0            8-bit blocks of 32, everything (~8.5 bits/weight)
  q6_k            6-bit K-quant, output.weight Q6_K (~6.6 bits/weight)
  q5_k_m          Q5_K; Q6_K for output.weight and for attn_v / ffn_down in the first
                  and last eighth of the layers and every third layer between
  q4_k_m          the same mix over Q4_K (~4.9 bits/weight): llama.cpp's usual choice
  q4_0 ... q5_1   legacy 32-blocks, output.weight Q6_K
  Rows that do not split into whole 256-blocks fall back as llama-quantize does
  (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, then F16); the summary lists them.

\b
--mmproj-type (vision tower + mlp1 projector): f16 (default; what llama.cpp ships),
  f32, bf16, q8_0; also q4_0/q4_1/q5_0/q5_1 (llama.cpp loads them, but has no tool
  that makes them). Position and class embeddings stay F32, the patch embedding is
  F16 only in an f16 file, as llama.cpp's converter does.

\b
A ps_version v1 checkpoint's mmproj is refused unless --allow-v1: llama.cpp knows only
the v2 pixel-shuffle order, so its images would arrive transposed.
"""


def _fallbacks(plan: FilePlan) -> list[dict]:
    """Tensors whose row length forced another type than the mix asks for (as llama-quantize does)."""
    return [{"tensor": t.gguf_name, "wanted": t.wanted.name, "got": t.qtype.name, "row": t.shape[-1]}
            for t in plan.fallbacks()]


def gguf(
    model: Path = typer.Argument(..., help="Checkpoint folder (config.json + safetensors shards + tokenizer)."),
    file_type: FileTypeName = typer.Option("q4_k_m", "--type", "-t", case_sensitive=False,
                                           help="GGML type (mix) of the language model; see above."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the .gguf files into (created if missing)."),
    mmproj_type: MmprojTypeName = typer.Option("f16", "--mmproj-type", case_sensitive=False,
                                               help="Type of the vision projector file."),
    name: str = typer.Option(None, "--name", help="Model name: general.name and the file names "
                                                  "(default: the checkpoint folder's name)."),
    no_mmproj: bool = typer.Option(False, "--no-mmproj", help="Write only the language model."),
    no_llm: bool = typer.Option(False, "--no-llm", help="Write only the mmproj (e.g. to redo it with another "
                                                        "--mmproj-type or --roll-pos-embd)."),
    allow_v1: bool = typer.Option(False, "--allow-v1", help="Write the mmproj of a ps_version v1 checkpoint anyway "
                                                            "(llama.cpp will see its images transposed)."),
    roll_pos_embd: bool = typer.Option(
        False, "--roll-pos-embd",
        help="Store v.position_embd rolled (class row last) for llama.cpp builds whose InternVL graph appends the "
             "class token after the patches (llama.cpp 0c1e57098 / llama-cpp-python 0.3.36 does: without this, patch "
             "i gets patch i-1's position). Wrong for a runtime that puts the class token first."),
    threads: int = typer.Option(1, "--threads", min=0, help="torch threads while encoding (0: torch's default)."),
    device: str = typer.Option("cpu", "--device", help="Where to encode: cpu, or cuda for speed (the encoders are "
                                                       "written to be bit-exact there too; checked on CPU)."),
    force: bool = typer.Option(False, "--force", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    ckpt = open_checkpoint(model)
    plan = plan_export(ckpt, out_dir, file_type.value, mmproj_type.value, name, not no_mmproj, allow_v1,
                       not no_llm)
    for p in plan.files:  # fail before drawing any progress
        check_writable(p.path, force)
    notes = []
    if plan.mmproj is not None and ckpt.config.ps_version == "v1":
        notes.append("ps_version v1 written with --allow-v1: llama.cpp will feed this model its images transposed")
    if plan.mmproj is not None and mmproj_type.value not in MMPROJ_CONVERTER_TYPES:
        notes.append(f"mmproj type {mmproj_type.value} is not one llama.cpp's converter writes (it loads it)")
    if plan.mmproj is not None and not roll_pos_embd:
        notes.append("llama.cpp 0c1e57098 adds position rows off by one in its InternVL graph; "
                     "--roll-pos-embd compensates (see --help)")
    t0 = time.monotonic()
    with byte_progress() as progress:
        tasks = {p.kind: progress.add_task(f"writing {p.path.name}", total=p.nbytes) for p in plan.files}
        export_gguf(ckpt, out_dir, overwrite=force, progress=lambda kind, _name, n: progress.advance(tasks[kind], n),
                    roll_position_embd=roll_pos_embd, device=device, threads=threads or None, plan=plan)
    seconds = time.monotonic() - t0
    summary = {
        "model": str(model),
        "name": plan.name,
        "seconds": round(seconds, 1),
        "roll_pos_embd": roll_pos_embd,
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
