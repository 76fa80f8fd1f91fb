"""Benchmark: walk every unit of the full-width ``slice`` checkpoint; time, throughput, peak RSS.

Run:  python bench/bench_read.py [--work-dir DIR] [--layers 2 4]

For each layer count it writes a ``slice`` demo checkpoint (real 38B widths,
that many vision and LLM layers), then walks it unit by unit in a fresh
process and prints wall time, MB/s and peak RSS against the bound
``2 x largest unit + fixed overhead``.  Peak RSS must not grow with depth.
The page cache is dropped before each walk when the OS allows it (root);
otherwise the figures are for cached reads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb

FIXED_OVERHEAD_MB = 600  # Python + torch + rich imported, measured before the walk (printed below)


def walk(model: str) -> None:
    """Child process: report RSS after imports, then walk every unit, keeping none."""
    from r1v_quant.read import open_checkpoint

    base_mb = peak_rss_mb()
    ckpt = open_checkpoint(model)
    largest = max(ckpt.unit_bytes(u) for u in ckpt.unit_names())
    total = 0
    start = time.perf_counter()
    for unit in ckpt.iter_units():
        total += unit.nbytes
        del unit
    wall = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    print(json.dumps({"bytes": total, "wall_s": wall, "largest_unit_bytes": largest,
                      "baseline_rss_mb": base_mb, "peak_rss_mb": peak_mb}))


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=None, help="where to write the checkpoints (needs ~15 GB)")
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--keep", action="store_true", help="keep the checkpoints")
    args = ap.parse_args()
    from r1v_quant.demo import PRESETS, build_demo_checkpoint

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-read-"))
    rows = []
    for n in args.layers:
        model = work / f"slice-{n}"
        if not model.exists():
            t = time.perf_counter()
            build_demo_checkpoint(model, PRESETS["slice"].with_overrides(vision_layers=n, llm_layers=n))
            print(f"built {model} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        cold = drop_caches()
        proc = subprocess.run([sys.executable, __file__, "--child", str(model)], capture_output=True, text=True,
                              check=True)
        r = json.loads(proc.stdout)
        bound = 2 * r["largest_unit_bytes"] / 2**20 + FIXED_OVERHEAD_MB
        rows.append((n, r, bound, cold))
        if not args.keep:
            shutil.rmtree(model)
    print(f"{'layers':>6} {'GB read':>8} {'wall s':>7} {'MB/s':>7} {'largest unit MB':>15} "
          f"{'baseline RSS MB':>15} {'peak RSS MB':>11} {'bound MB':>9} {'ok':>3} {'cache':>6}")
    for n, r, bound, cold in rows:
        mbs = r["bytes"] / 2**20 / r["wall_s"]
        print(f"{n:>6} {r['bytes'] / 1e9:>8.2f} {r['wall_s']:>7.2f} {mbs:>7.0f} "
              f"{r['largest_unit_bytes'] / 2**20:>15.0f} {r['baseline_rss_mb']:>15.0f} {r['peak_rss_mb']:>11.0f} "
              f"{bound:>9.0f} {'yes' if r['peak_rss_mb'] < bound else 'NO':>3} {'cold' if cold else 'warm':>6}")
    if len(rows) > 1:
        growth = rows[-1][1]["peak_rss_mb"] - rows[0][1]["peak_rss_mb"]
        print(f"peak RSS change from {rows[0][0]} to {rows[-1][0]} layers: {growth:+.0f} MB")
    if not args.keep and args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        walk(sys.argv[2])
    else:
        main()
