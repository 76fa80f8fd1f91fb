"""Benchmark: reference logits on full-width ``slice`` checkpoints; tokens/s and peak RSS vs depth.

Run:  python bench/bench_reference.py [--work-dir DIR] [--layers 2 4] [--images 2 --texts 2 --max-tiles 2]

Builds (or reuses, in --work-dir) ``slice`` checkpoints with 2 and 4 vision and LLM layers, then runs
``reference`` on a subset of the shipped eval set in a fresh process each, on the CPU in float32, and
prints wall time, tokens/s (all tokens, image slots included) and peak RSS.  Peak RSS must stay flat
as layers are added: the engine holds one unit at a time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import eval_subset, peak_rss_mb


def child(model: str, data: str, max_tiles: int, out: str) -> None:
    from r1v_quant.calibrate.dataset import load_samples
    from r1v_quant.pipelines.reference import ReferenceOptions, compute_reference
    from r1v_quant.read import open_checkpoint
    from r1v_quant.validate.reference_file import save_reference

    base = peak_rss_mb()
    start = time.perf_counter()
    ckpt = open_checkpoint(model)
    ref = compute_reference(ckpt, load_samples(Path(data)), Path(data), ReferenceOptions(max_tiles=max_tiles))
    save_reference(Path(out), ref, overwrite=True)
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "tokens": ref.meta["counts"]["tokens"],
                      "positions": ref.meta["counts"]["positions"], "baseline_rss_mb": base,
                      "peak_rss_mb": peak_rss_mb(), "file_bytes": Path(out).stat().st_size}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--texts", type=int, default=2)
    ap.add_argument("--max-tiles", type=int, default=2)
    args = ap.parse_args()
    from r1v_quant.demo import PRESETS, build_demo_checkpoint

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-ref-"))
    work.mkdir(parents=True, exist_ok=True)
    data = eval_subset(work / "subset.jsonl", args.images, args.texts)
    rows = []
    for n in args.layers:
        model = work / f"slice-{n}"
        if not model.exists():
            build_demo_checkpoint(model, PRESETS["slice"].with_overrides(vision_layers=n, llm_layers=n))
        proc = subprocess.run([sys.executable, __file__, "--child", str(model), str(data), str(args.max_tiles),
                               str(work / f"slice-{n}.r1vref")], capture_output=True, text=True)
        if proc.returncode:
            sys.exit(proc.stderr)
        rows.append((n, json.loads(proc.stdout.strip().splitlines()[-1])))
    print(f"samples: {args.images} image + {args.texts} text, max tiles {args.max_tiles}, CPU float32")
    print(f"{'layers':>6} {'tokens':>7} {'scored':>7} {'wall s':>7} {'tokens/s':>9} {'baseline RSS MB':>15} "
          f"{'peak RSS MB':>11} {'file MB':>8}")
    for n, r in rows:
        print(f"{n:>6} {r['tokens']:>7} {r['positions']:>7} {r['wall_s']:>7.1f} {r['tokens'] / r['wall_s']:>9.1f} "
              f"{r['baseline_rss_mb']:>15.0f} {r['peak_rss_mb']:>11.0f} {r['file_bytes'] / 1e6:>8.2f}")
    if len(rows) > 1:
        print(f"peak RSS change from {rows[0][0]} to {rows[-1][0]} layers: "
              f"{rows[-1][1]['peak_rss_mb'] - rows[0][1]['peak_rss_mb']:+.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
