"""``r1v-quant imatrix``: an importance matrix for llama.cpp's quantizer, measured on images and text."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ..pipelines.imatrix import BALANCES, ImatrixOptions, compute_imatrix
from ..write.atomic import check_writable
from .console import (MODEL_HELP, REVISION_HELP, ComputeDType, err, open_model, print_json,
                      CalibData, CalibMaxTiles, CalibSamples, CalibSeqLen)

HELP = """\
Measure an importance matrix: for every matrix llama.cpp quantizes, the per-input-column sum of squared \
activations and the token count, over the calibration set with its images through the vision tower and \
the projector into the language model (llama.cpp's own llama-imatrix sees text only). Covers the language \
model (blk.N.*, and output.weight over the positions whose logits are read: not those before an image \
slot), the vision tower (v.blk.N.*) and the projector (mm.*), named as in the .gguf files, in llama.cpp's \
GGUF imatrix format: `r1v-quant gguf --imatrix FILE` and `llama-quantize \
--imatrix FILE` read it.
"""

Balance = Enum("Balance", {b: b for b in BALANCES}, type=str)


def imatrix(
    model: str = typer.Argument(None, help=MODEL_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="The importance matrix to write (.gguf)."),
    data: CalibData = None,
    samples: CalibSamples = 128,
    seq_len: CalibSeqLen = 2048,
    max_tiles: CalibMaxTiles = 4,
    text_only: bool = typer.Option(False, "--text-only", help="Only the samples without images (what "
                                                              "llama-imatrix measures), for comparison."),
    balance: Balance = typer.Option("prompts", "--balance",
                                    help="How the language model's entries weigh the samples: prompts = those "
                                         "with images and those without count alike (a tile alone is 256 "
                                         "tokens); tokens = every token alike, as llama-imatrix sums."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: ComputeDType = typer.Option("float32", "--dtype", help="Compute dtype."),
    revision: str = typer.Option(None, "--revision", help=REVISION_HELP),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    ckpt, _ = open_model(model, revision)
    check_writable(out, force)
    opt = ImatrixOptions(data=data, samples=samples, seq_len=seq_len, max_tiles=max_tiles, text_only=text_only,
                         balance=balance.value, device=device, dtype=dtype.value)
    with err.status("measuring") as status:
        summary = compute_imatrix(ckpt, out, opt, overwrite=force, progress=lambda m: status.update(f"imatrix: {m}"))
    if as_json:
        print_json(summary)
    else:
        err.print(f"wrote {out}: {summary['entries']} tensors ({summary['vision_entries']} of the vision tower and "
                  f"projector), {summary['samples']} samples ({summary['image_samples']} with images), "
                  f"{summary['tokens']} tokens")


imatrix.__doc__ = HELP
