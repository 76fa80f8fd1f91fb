"""Benchmark, side by side in one run: ``awq`` at the real widths, before and after a change.

Run:  python bench/bench_awq_scale.py --work-dir DIR [--before REV] [--model SLICE] [--sizes 2x128 4x128]

* Two versions of the code: ``--before`` (a git revision, exported with ``git archive``) and this
  working tree (copied at the start), each run as a fresh process per measurement on the same data.
  The old code calibrated the language model only, so this tree runs twice: with ``vision=False``
  (like for like) and as it ships (the vision tower quantized too).
* At the real widths: a ``slice`` checkpoint (5120-wide LLM, MLP 27648, real vocabulary, 3200-wide
  vision tower; one decoder layer unless ``--model`` is given) at two calibration sizes (samples x
  sequence length, one tile per image): peak RSS (VmHWM over the whole run), bytes per calibration
  token (the slope between the two sizes), seconds per layer of each stack.  ``--reuse`` keeps the
  measurements already in ``--work-dir``.
* Quality on the tiny checkpoint, for each version with the same calibration: mean KL and top-1
  agreement against the BF16 reference on held-out eval samples, image and text prompts apart
  (this tree's ``reference`` and ``validate``; the AWQ folder format is the same for both).
* The 38B, extrapolated from this tree's memory plan at the default calibration (128 samples, up to
  2048 tokens, up to 4 tiles), on a CPU (float32) and on a GPU (bfloat16, activations on the GPU or
  ``--offload``ed), with time from the plan's FLOPs.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import eval_subset, peak_rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CALIB = ROOT / "calib_data" / "calib.jsonl"
H100_BF16_TFLOPS = 400.0  # sustained dense bf16 assumed for the estimate (989 peak); not a measurement


# --- the child: one awq run of one version of the code -------------------------------------------------
def child(code: str, model: str, out: str, samples: int, seq_len: int, extra: dict) -> dict:
    sys.path.insert(0, code)
    try:
        from r1v_quant.pipelines.awq import AWQRunOptions, quantize_model
    except ImportError:  # before the pipelines/ layout
        from r1v_quant.quantize.awq_model import AWQRunOptions, quantize_model  # type: ignore[no-redef]
    from r1v_quant.read import open_checkpoint

    starts: dict[str, float] = {}
    seconds: dict[str, list[float]] = {}

    def events(kind: str, d: dict) -> None:  # both versions emit these; only the newer one names the unit
        unit = d.get("unit") or f"{d.get('stack', 'llm')}.layer.{d.get('layer')}"
        if kind == "layer_start":
            starts[unit] = time.perf_counter()
        elif kind == "layer_done":
            seconds.setdefault(unit.split(".")[0], []).append(round(time.perf_counter() - starts[unit], 1))

    t = time.perf_counter()
    opt = AWQRunOptions(samples=samples, seq_len=seq_len, max_tiles=1, data=str(CALIB), **extra)
    s = quantize_model(open_checkpoint(model), Path(out), opt, overwrite=True, events=events)
    # the newer code resets VmHWM per phase and reports the run's peak itself
    peak = s.get("peak_host_bytes") or peak_rss_mb() * 2**20
    phases = {k: round(v["host_bytes"] / 2**20) for k, v in s.get("measured_peaks", {}).items() if v["host_bytes"]}
    return {"wall_s": round(time.perf_counter() - t, 1), "peak_rss_mb": round(peak / 2**20), "phase_peaks_mb": phases,
            "tokens": s["calibration"]["tokens"], "image_tokens": s["calibration"]["image_tokens"],
            "seconds_per_layer": seconds, "code": code, "options": extra}


def run_child(code: Path, model: Path, out: Path, samples: int, seq_len: int, extra: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(code), str(model), str(out), str(samples), str(seq_len),
           json.dumps(extra or {})]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- steps ---------------------------------------------------------------------------------------------
def export_revision(rev: str, dest: Path) -> Path:
    if not (dest / "r1v_quant").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "r1v_quant"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def build(out: Path, preset: str, llm_layers: int | None) -> Path:
    from r1v_quant.demo import PRESETS, build_demo_checkpoint

    if not (out / "config.json").is_file():
        build_demo_checkpoint(out, PRESETS[preset].with_overrides(llm_layers=llm_layers), overwrite=True)
    return out


def quality(runs_of: list[tuple[str, Path, dict, list[str]]], work: Path, samples: int, seq_len: int, eval_images: int,
            eval_texts: int) -> dict[str, dict]:
    """Mean KL / top-1 to the BF16 reference on held-out samples, per version."""
    from r1v_quant.calibrate.dataset import load_samples
    from r1v_quant.pipelines.reference import ReferenceOptions, compute_reference
    from r1v_quant.pipelines.validate import ValidateOptions, validate_artifact
    from r1v_quant.read import open_checkpoint
    from r1v_quant.validate.reference_file import save_reference
    from r1v_quant.validate.report import Thresholds

    tiny = build(work / "tiny", "tiny", None)
    data = eval_subset(work / "eval.jsonl", eval_images, eval_texts)
    ref = work / "tiny.r1vref"
    if not ref.is_file():
        save_reference(ref, compute_reference(open_checkpoint(tiny), load_samples(data), data,
                                              ReferenceOptions(max_tiles=2)), overwrite=True)
    out = {}
    loose = Thresholds(max_kl=1e9, min_top1=0.0, max_ppl_ratio=1e9)  # figures, not a gate
    for name, code, extra, _ in runs_of:
        if "chunk_tokens" in extra:  # the same algorithm in smaller chunks: a speed and memory setting only
            continue
        artifact = work / f"tiny-awq-{name.replace(' ', '').replace(',', '-')}"
        r = run_child(code, tiny, artifact, samples, seq_len, extra)
        report = validate_artifact(artifact, ref, ValidateOptions(data=data, thresholds=loose))
        out[name] = {"tokens": r["tokens"], "wall_s": r["wall_s"],
                     **{f"{k}_{g}": v[k] for g, v in report.groups.items() for k in ("kl_mean", "top1")}}
    return out


def extrapolate_38b(work: Path) -> list[dict]:
    """This tree's plan for the real geometry at the default calibration."""
    import dataclasses

    from r1v_quant.calibrate.dataset import load_samples
    from r1v_quant.calibrate.prompts import prepare_samples
    from r1v_quant.demo import PRESETS
    from r1v_quant.demo.build import config_dict
    from r1v_quant.demo.presets import LLMPreset, VisionPreset
    from r1v_quant.engine.memory import host_rss
    from r1v_quant.pipelines.awq import AUTO_CHUNK_TOKENS, calibration_of
    from r1v_quant.pipelines.awq_plan import AWQRunPlan
    from r1v_quant.quantize.awq import AWQOptions
    from r1v_quant.read import open_checkpoint
    from r1v_quant.read.config import parse_config

    real = dataclasses.replace(
        PRESETS["slice"], name="r1v-38b",
        vision=VisionPreset(3200, 45, 25, 12800, norm_type="rms_norm", qk_normalization=True, qkv_bias=False),
        llm=LLMPreset(hidden_size=5120, num_layers=64, num_heads=40, num_kv_heads=8, intermediate_size=27648))
    cfg = parse_config(config_dict(real, 0), work / "r1v-38b-config.json")
    tiny = open_checkpoint(build(work / "tiny", "tiny", None))  # the tokenizer and tiling the 38B has
    prepared = prepare_samples(tiny, load_samples(CALIB)[:128], max_tiles=4)
    calib = calibration_of(prepared, 2048)
    rows = []
    for label, on_gpu, offload, dtype_bytes in (("CPU, float32", False, False, 4), ("GPU, bfloat16", True, False, 2),
                                                ("GPU, bfloat16, --offload", True, True, 2)):
        chunk = AUTO_CHUNK_TOKENS["cuda" if on_gpu else "cpu"]
        plan = AWQRunPlan(cfg, calib, AWQOptions(chunk_tokens=chunk), compute_bytes=dtype_bytes, source_bytes=2,
                          on_gpu=on_gpu, offload=offload, base_host=host_rss(), vision=True)
        host, device, step = plan.peak()
        flops = plan.total_flops()
        rows.append({"setting": label, "tokens": calib.tokens, "image_tokens": calib.image_tokens,
                     "tiles": calib.tiles, "peak_host_gb": round(host / 1e9, 2), "peak_device_gb": round(device / 1e9, 2),
                     "peak_step": step, "pflop": round(flops / 1e15, 1),
                     "h100_minutes": round(flops / (H100_BF16_TFLOPS * 1e12) / 60, 1) if on_gpu else None})
    return rows


def table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        print(json.dumps(child(a[0], a[1], a[2], int(a[3]), int(a[4]), json.loads(a[5]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--before", default="HEAD", help="git revision of the code to compare with (default HEAD)")
    ap.add_argument("--model", type=Path, default=None, help="slice checkpoint (default: built, 1 decoder layer)")
    ap.add_argument("--sizes", nargs=2, default=["2x128", "4x128"], help="two calibration sizes, SAMPLESxSEQLEN")
    ap.add_argument("--tiny-calib", default="16x512", help="calibration for the quality comparison")
    ap.add_argument("--eval", type=int, nargs=2, default=[8, 8], metavar=("IMAGES", "TEXTS"))
    ap.add_argument("--reuse", action="store_true", help="keep the slice measurements of an earlier run in "
                    "--work-dir (runs.json)")
    ap.add_argument("--vision-both-sizes", action="store_true", help="the default run (vision tower too) at "
                    "both sizes, not only the first")
    ap.add_argument("--only-cached", action="store_true", help="with --reuse: leave out the slice runs not "
                    "measured yet")
    ap.add_argument("--skip-slice", action="store_true", help="only the quality comparison and the 38B plan")
    a = ap.parse_args()
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-awq-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    after = work / "code-working-tree"  # a copy: the tree may change while the benchmark runs
    shutil.rmtree(after, ignore_errors=True)
    shutil.copytree(ROOT / "r1v_quant", after / "r1v_quant", ignore=shutil.ignore_patterns("__pycache__"))
    versions = {"before": export_revision(a.before, work / f"code-{a.before}"), "after": after}
    # (label, code, options, sizes): the old code calibrates the LLM only, so "after, LLM only" is the
    # like-for-like comparison, at both sizes; "after" is the default run, vision tower included (its
    # real-width clip search is the slow part: one size, unless --vision-both-sizes)
    runs_of = [("before", versions["before"], {}, a.sizes), ("after, LLM only", after, {"vision": False}, a.sizes),
               # both sizes above the chunk: what stays per token is what the slope shows
               ("after, LLM only, --chunk-tokens 128", after, {"vision": False, "chunk_tokens": 128}, a.sizes),
               ("after", after, {}, a.sizes if a.vision_both_sizes else a.sizes[:1])]
    results: dict = {"before": a.before, "sizes": a.sizes}
    cache_file = work / "runs.json"  # finished measurements, so an interrupted benchmark resumes
    cache = json.loads(cache_file.read_text()) if a.reuse and cache_file.is_file() else {}
    if not a.skip_slice:
        model = a.model or build(work / "slice-1", "slice", 1)
        rows = []
        for label, code, extra, sizes in runs_of:
            runs = []
            for size in sizes:
                key = f"{label} {size}"
                if key not in cache and a.only_cached:
                    continue
                if key not in cache:
                    samples, seq_len = (int(x) for x in size.split("x"))
                    cache[key] = run_child(code, model, work / "slice-awq", samples, seq_len, extra)
                    cache_file.write_text(json.dumps(cache, indent=2))
                print(f"{key}: {cache[key]}", flush=True)
                runs.append(cache[key])
            if not runs:
                continue
            slope = ((runs[1]["peak_rss_mb"] - runs[0]["peak_rss_mb"]) * 2**20 / (runs[1]["tokens"] - runs[0]["tokens"])
                     if len(runs) == 2 else None)
            for size, r in zip([s for s in sizes if f"{label} {s}" in cache], runs):
                per = r["seconds_per_layer"]
                rows.append({"code": label, "calibration": size, "tokens": r["tokens"], "peak RSS MB": r["peak_rss_mb"],
                             "layer-phase peak MB": r.get("phase_peaks_mb", {}).get("layer", "-"),
                             "bytes per token (slope)": "-" if slope is None else f"{slope / 1024:,.0f} KB",
                             "s per LLM layer": per.get("llm"), "s per vision layer": per.get("vision", "-"),
                             "wall s": r["wall_s"]})
        results["slice"] = rows
        print(table(rows, list(rows[0])), flush=True)
    samples, seq_len = (int(x) for x in a.tiny_calib.split("x"))
    q = quality(runs_of, work, samples, seq_len, *a.eval)
    results["quality"] = q
    print(table([{"code": k, **v} for k, v in q.items()], ["code", *next(iter(q.values()))]), flush=True)
    x = extrapolate_38b(work)
    results["r1v_38b"] = x
    print(table(x, list(x[0])), flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
