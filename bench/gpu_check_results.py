"""The tables of ``bench/gpu_check.sh``, from whatever reports its run has written so far.

    python bench/gpu_check_results.py REPORTS WORK DEVICE

AWQ runs: calibration, measured peaks beside the plan's, seconds and TFLOP/s per layer, and the
38B's calibration time from them (the `slice` checkpoint has the 38B's widths, so a layer here is a
layer there at the same calibration; only the count differs).  Then the comparisons: --offload's
files against the plain run's, the validations, the GGUF files on DEVICE against the CPU's.  A line
starting MISMATCH marks a comparison that must hold and did not.
"""

from __future__ import annotations

import filecmp
import json
import sys
from pathlib import Path

# Skywork-R1V-38B: InternViT-6B (45 layers) and Qwen2-32B (64 layers), same widths as `slice`
LAYERS_38B = {"vision": 45, "llm": 64}
# gpu_check.sh's runs: all on DEVICE but the last
AWQ_RUNS = ("awq-full", "awq-full-offload", "awq-small", "awq-small-cpu")


def gb(n: int | None) -> str:
    return "-" if not n else f"{n / 1e9:.2f}"


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def awq_rows(runs: dict[str, dict]) -> list[str]:
    lines = ["| run | dtype | tokens (image) | tiles | peak GPU GB, measured / plan "
             "| peak host GB, measured / plan | s per vision layer | s per LLM layer | TFLOP/s vision, LLM "
             "| 38B, minutes |", "|" + "---|" * 10]
    for name, a in runs.items():
        plan, c, o = a["plan"], a["calibration"], a["options"]
        device = max((p["device_bytes"] or 0) for p in a["measured_peaks"].values())
        mean = {stack: sum(s) / len(s) for stack, s in a["seconds_per_layer"].items() if s}
        rate = {"vision": plan["flops_per_vision_layer"], "llm": plan["flops_per_layer"]}
        tflops = ", ".join(f"{rate[s] / mean[s] / 1e12:.3g}" if s in mean else "-" for s in ("vision", "llm"))
        minutes = (sum(LAYERS_38B[s] * mean[s] for s in LAYERS_38B) / 60 if set(mean) == set(LAYERS_38B) else None)
        lines.append(
            f"| {name} | {o['dtype']} "
            f"| {c['tokens']:,} ({c['image_tokens']:,}) | {c['tiles']} | {gb(device)} / {gb(plan['peak_device_bytes'])} "
            f"| {gb(a['peak_host_bytes'])} / {gb(plan['peak_host_bytes'])} "
            f"| {mean.get('vision', float('nan')):.2f} | {mean.get('llm', float('nan')):.2f} | {tflops} "
            f"| {'-' if minutes is None else f'{minutes:.1f}'} |")
    return lines


def phase_rows(runs: dict[str, dict]) -> list[str]:
    """Each phase's measured peaks beside the plan's, for the full-calibration runs."""
    lines = ["| run | phase | GPU GB, measured / plan | host GB, measured / plan |", "|---|---|---|---|"]
    for name in AWQ_RUNS[:2]:
        a = runs.get(name, {})
        for phase, m in a.get("measured_peaks", {}).items():
            p = a["plan"]["phase_peaks"].get(phase, {})
            lines.append(f"| {name} | {phase} | {gb(m['device_bytes'])} / {gb(p.get('device_bytes'))} "
                         f"| {gb(m['host_bytes'])} / {gb(p.get('host_bytes'))} |")
    return lines


def step_rows(runs: dict[str, dict]) -> list[str]:
    """Each step's measured peaks (max over its layers) beside the plan's, where the run measured them."""
    lines = ["| run | step | GPU GB, measured / plan | host GB, measured / plan |", "|---|---|---|---|"]
    for name, a in runs.items():
        base, plan = a["plan"]["base_host_bytes"], {s["step"]: s for s in a["plan"]["steps"]}
        for step, m in a.get("measured_steps", {}).items():
            p = plan.get(step, {})
            host = base + p["host_bytes"] if p else None
            lines.append(f"| {name} | {step} | {gb(m['device_bytes'])} / {gb(p.get('device_bytes'))} "
                         f"| {gb(m['host_bytes'])} / {gb(host)} |")
    return lines


def same_files(a: Path, b: Path, pattern: str) -> tuple[int, int]:
    files = sorted(p.relative_to(a) for p in a.glob(pattern))
    return sum(filecmp.cmp(a / f, b / f, shallow=False) for f in files if (b / f).is_file()), len(files)


def main() -> int:
    reports, work, dev = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    print("== results")
    # each report read once, in AWQ_RUNS order, for all three tables
    runs = {n: a for n in AWQ_RUNS if (a := load(reports / f"{n}.json")) is not None}
    print("\n".join(awq_rows(runs)))
    print("\n".join(phase_rows(runs)))
    print("\n".join(step_rows(runs)))
    ok = True
    if all((work / n).is_dir() for n in ("awq-full", "awq-full-offload")):
        same, n = same_files(work / "awq-full", work / "awq-full-offload", "*.safetensors")
        print(f"awq --offload shards identical to the plain run's: {same} of {n}")
        ok &= same == n > 0
    for name in ("val-ref", "val-awq-full", "val-awq-small", "val-awq-small-cpu"):
        r = load(reports / f"{name}.json")
        if r is not None:
            print(f"{name:18s} " + "  ".join(f"{g}: KL {v['kl_mean']:.4f} top-1 {v['top1']:.3f}"
                                            for g, v in r["groups"].items()))
    gg = {d: load(reports / f"gguf-{d}.json") for d in (dev, "cpu")}
    if all(gg.values()):
        files = [Path(f["path"]) for f in gg[dev]["files"]]
        same = [filecmp.cmp(f, work / "gguf-cpu" / f.name, shallow=False) for f in files]
        for d, g in gg.items():
            size = sum(f["bytes"] for f in g["files"])
            print(f"gguf {d:5s}: {g['seconds']} s, {size / 1e9 / max(g['seconds'], 1e-9):.3f} GB/s written")
        print(f"gguf files identical on {dev} and cpu: {all(same)} ({sum(same)} of {len(same)})")
        ok &= all(same)
    if not ok:
        print("MISMATCH: see above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
