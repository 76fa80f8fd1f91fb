"""The validation table of the tiny demo checkpoint's artifacts, both runtimes where they apply.

Run:  python bench/bench_validate.py [--work-dir DIR] [--eval-images 8 --eval-texts 8] [--max-tiles 2]

Builds (or reuses, in --work-dir) the tiny checkpoint, its reference on an eval subset, an AWQ
folder (16 calibration samples) and GGUF Q8_0 / Q5_K_M / Q4_K_M language models with one F16
mmproj (position table rolled for llama.cpp's graph), then validates each with the forward
engine and, for the GGUF files, with llama.cpp itself; prints one Markdown table with wall
time per validation.  The tiny model is random, so its KLs are large; the ranking is the point.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import eval_subset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--eval-images", type=int, default=8)
    ap.add_argument("--eval-texts", type=int, default=8)
    ap.add_argument("--max-tiles", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from r1v_quant.calibrate.dataset import load_samples
    from r1v_quant.demo import PRESETS, build_demo_checkpoint
    from r1v_quant.pipelines.awq import AWQRunOptions, quantize_model
    from r1v_quant.pipelines.gguf import export_gguf
    from r1v_quant.pipelines.reference import ReferenceOptions, compute_reference
    from r1v_quant.pipelines.validate import ValidateOptions, validate_artifact
    from r1v_quant.read import open_checkpoint
    from r1v_quant.validate.reference_file import save_reference
    from r1v_quant.validate.report import Thresholds

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-validate-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "tiny"
    if not model.exists():
        build_demo_checkpoint(model, PRESETS["tiny"])
    ckpt = open_checkpoint(model)
    data = eval_subset(work / "eval.jsonl", args.eval_images, args.eval_texts)
    ref = work / "ref.r1vref"
    if not ref.exists():
        save_reference(ref, compute_reference(ckpt, load_samples(data), data, ReferenceOptions(max_tiles=args.max_tiles)))
    awq = work / "awq"
    if not awq.exists():
        quantize_model(ckpt, awq, AWQRunOptions(samples=16, seq_len=512, max_tiles=1))
    gguf = work / "gguf"
    files = {}
    for i, t in enumerate(("q8_0", "q5_k_m", "q4_k_m")):
        path = gguf / f"tiny-{t.upper()}.gguf"
        if not path.exists():
            export_gguf(ckpt, gguf, t, "f16", mmproj=i == 0, roll_position_embd=True, overwrite=True)
        files[t.upper()] = path
    loose = Thresholds(max_kl=1e9, min_top1=0, max_ppl_ratio=1e9)
    runs = [("BF16 source", model, "engine"), ("AWQ 4-bit g128", awq, "engine")]
    for name, path in files.items():
        runs += [(f"GGUF {name}", path, "engine"), (f"GGUF {name}", path, "llama.cpp")]
    print(f"tiny demo checkpoint; eval {args.eval_images} image + {args.eval_texts} text samples, "
          f"max {args.max_tiles} tiles; mmproj F16")
    print("| artifact | runtime | prompts | positions | mean KL | p99 KL | top-1 | top-5 miss | PPL ratio | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, path, runtime in runs:
        t = time.perf_counter()
        r = validate_artifact(path, ref, ValidateOptions(runtime=runtime, data=data, thresholds=loose,
                                                         threads=args.threads))
        wall = time.perf_counter() - t
        for group, g in r.groups.items():
            print(f"| {name} | {runtime} | {group} | {g['positions']} | {g['kl_mean']:.4f} | {g['kl_p99']:.3f} | "
                  f"{g['top1']:.3f} | {g['top5_miss']:.3f} | {g['ppl_ratio']:.3f} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
