"""Benchmark, side by side in one run: what an importance matrix buys GGUF, measured in llama.cpp.

Run:  python bench/bench_imatrix.py --work-dir DIR [--calib 32x512] [--eval 16 16] [--threads 2]

On the tiny checkpoint, against the BF16 reference on held-out eval samples, image and text prompts
apart (mean KL, top-1 agreement), in llama.cpp's runtime (``validate --runtime llama.cpp``), for
Q4_K_M, IQ4_XS and Q3_K_M, each quantized

* without a matrix (what ``llama-quantize`` does by default),
* with a text-only matrix: ``r1v-quant imatrix --text-only`` over the text samples of the same
  calibration samples, which is all of them that ``llama-imatrix`` can measure,
* with the multimodal matrix: those calibration samples, images through the vision tower into the
  language model and text as text (the same text tokens as the text-only matrix, plus the images),
  the samples with and without images weighing alike (``--balance prompts``, the default),
* and the same multimodal samples summed every token alike (``--balance tokens``, as
  ``llama-imatrix`` sums), where the image positions dominate.

The mmproj is the release default (Q8_0, position table rolled for llama.cpp's graph) in every row,
so what differs is the language model file.  ``DIR`` may be shared with ``bench_vision.py`` (same
checkpoint, eval subset and reference).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import tiny_with_reference  # noqa: E402

TYPES = ("q4_k_m", "iq4_xs", "q3_k_m")
# name -> (text only, balance); "multimodal" is what `imatrix` and `gguf --imatrix auto` make
MATRICES = {"none": None, "text-only": (True, "prompts"), "multimodal, tokens alike": (False, "tokens"),
            "multimodal": (False, "prompts")}


def slug(kind: str) -> str:
    """A matrix's name as a file or folder name: "multimodal, tokens alike" -> "multimodal-tokens-alike"."""
    return kind.replace(", ", "-").replace(" ", "-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--calib", default="32x512", help="imatrix calibration, SAMPLESxSEQLEN")
    ap.add_argument("--eval", type=int, nargs=2, default=[16, 16], metavar=("IMAGES", "TEXTS"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from r1v_quant.calibrate.dataset import default_data_path, load_samples
    from r1v_quant.pipelines.gguf import export_gguf
    from r1v_quant.pipelines.imatrix import ImatrixOptions, compute_imatrix
    from r1v_quant.pipelines.validate import ValidateOptions, validate_artifact
    from r1v_quant.read import open_checkpoint
    from r1v_quant.read.imatrix_file import load_imatrix
    from r1v_quant.validate.report import Thresholds

    work = a.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-imatrix-"))
    work.mkdir(parents=True, exist_ok=True)
    model, data, ref = tiny_with_reference(work, *a.eval)
    ckpt = open_checkpoint(model)
    loose = Thresholds(max_kl=1e9, min_top1=0.0, max_ppl_ratio=1e9)  # figures, not a gate
    samples, seq_len = (int(x) for x in a.calib.split("x"))

    # the text samples among the first `samples` are the first `texts` text samples of the set
    texts = sum(not s.images for s in load_samples(default_data_path("calib"))[:samples])
    matrices = {}
    for kind, how in MATRICES.items():
        if how is None:
            matrices[kind] = None
            continue
        text_only, balance = how
        path = work / f"tiny.{slug(kind)}-{samples}x{seq_len}.imatrix.gguf"
        if not path.is_file():
            compute_imatrix(ckpt, path, ImatrixOptions(samples=texts if text_only else samples, seq_len=seq_len,
                                                       max_tiles=1, text_only=text_only, balance=balance),
                            overwrite=True)
        matrices[kind] = load_imatrix(path)
    gguf = work / "gguf-imatrix"
    mmproj = gguf / "mmproj-tiny-Q8_0.gguf"
    if not mmproj.is_file():
        export_gguf(ckpt, gguf, "f16", "q8_0", llm=False, roll_position_embd=True, overwrite=True)

    rows = []
    for t in TYPES:
        for kind, m in matrices.items():
            folder = gguf / slug(kind)
            llm, _ = export_gguf(ckpt, folder, t, mmproj=False, overwrite=True, imatrix=m)
            r = validate_artifact(llm, ref, ValidateOptions(data=data, thresholds=loose, threads=a.threads,
                                                            runtime="llama.cpp", mmproj=mmproj))
            rows.append({"type": t.upper(), "imatrix": kind, "bytes": llm.stat().st_size,
                         **{f"{k}_{g}": round(v[k], 4) for g, v in r.groups.items() for k in ("kl_mean", "top1")}})
            print(rows[-1], flush=True)

    cols = ["type", "imatrix", "kl_mean_image", "top1_image", "kl_mean_text", "top1_text"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    counts = {k: (m.chunk_count, len(m.sums)) for k, m in matrices.items() if m is not None}
    (work / "imatrix-results.json").write_text(json.dumps({"rows": rows, "matrices": counts}, indent=2))
    print(f"\nresults: {work / 'imatrix-results.json'}")


if __name__ == "__main__":
    main()
