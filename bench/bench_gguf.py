"""Benchmark, side by side in one run: r1v-quant ``gguf`` vs llama.cpp's own pipeline, safetensors -> Q4_K_M.

Run:  python bench/bench_gguf.py [--work-dir DIR] [--threads 1 2] [--type q4_k_m] [--imatrix] [--depth 2 4] [--keep]
      python bench/bench_gguf.py --depth-only --depth 4 [--work-dir DIR2]   (the depth check alone)

On a ``slice`` demo checkpoint (the real 38B widths, real vocabulary; default 4 vision + 2 LLM
layers), both make the language model in ``--type`` and the vision projector (mmproj) in F16:

* r1v-quant: ``export_gguf`` in one fresh process (``threads`` threads, each reading, encoding
  and writing blocks of rows), both files in one pass each, no intermediate file;
* llama.cpp (the llama-cpp-python 0.3.36 sdist's ``convert_hf_to_gguf.py`` and its built
  ``llama_model_quantize``): the converter writes a BF16 file (``--outtype bf16``: our quantized
  mixes encode the BF16 values exactly, so that is the input on which the bytes must agree),
  ``llama_model_quantize`` (same thread count) turns it into ``--type``, and the converter with
  ``--mmproj --outtype f16`` writes the mmproj.

``--imatrix``: both quantize with the same seeded, synthetic importance matrix (every LLM matrix but
token_embd; our ``export_gguf(imatrix=...)``, and ``llama_model_quantize`` given what ``llama-quantize
--imatrix`` gives it), so the importance-weighted searches are what is timed.

``--threads 1 2`` (the default) runs the whole comparison at each count, one after the other, and
prints how much faster each pipeline gets; both pipelines always get the same count.  The
converter has no thread option (numpy, one thread).

Every step runs in its own fresh process; wall time is the parent's clock around the process
(interpreter start and imports included), peak RSS the process's VmHWM, CPU time its user + sys.
A pipeline's peak RSS is the largest of its steps.  Intermediate disk is what exists only
between steps (llama.cpp's BF16 file).  The files are then compared tensor by tensor: names,
shapes, types and order, and every tensor's data bytes; our export is given the ``general.name``
the converter guessed, so that metadata agrees too (differing keys are printed).

``--depth 2 4`` then exports (ours only) checkpoints with those LLM layer counts, same widths,
and prints peak RSS next to the largest single tensor (the 152064 x 5120 BF16 embedding /
LM head): peak RSS must be bounded by a small multiple of that and not grow with depth.

The slice preset's vision tower is InternViT-6B's RMSNorm + q/k norm; llama.cpp's InternVL graph
picks RMSNorm only for the 45-layer tower, so ``r1v-quant gguf`` refuses that mmproj at 4
layers.  The benchmark therefore builds its checkpoints with the ``tiny`` preset's tower kind
(LayerNorm, qkv bias, no q/k norm) at the slice widths; the tensor sizes are the same but for
the small norm / bias vectors.  Nothing is cached between runs except the input checkpoints
in ``--work-dir`` (seeded: same bytes every time); outputs are rewritten every run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # llama.cpp's harness, shared with the tests
from _common import peak_rss_mb  # noqa: E402
from llama_harness import DEFAULT_SDIST, LLAMA_CPP_VERSION  # noqa: E402
CHUNK = 64 << 20


# --- children: each runs in a fresh process and writes {"peak_rss_mb", "cpu_s", ...} to a JSON file --------
def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_build(out: str, preset: str, vision_layers: int, llm_layers: int) -> dict:
    from r1v_quant.demo import build_demo_checkpoint

    build_demo_checkpoint(Path(out), bench_preset(preset, vision_layers, llm_layers))
    return {}


def child_convert(script: str, argv: list[str]) -> dict:
    """llama.cpp's converter as a user runs it (``python convert_hf_to_gguf.py ...``), in this process."""
    import runpy

    sys.argv = [script, *argv]
    sys.path[0] = str(Path(script).parent)  # what ``python script.py`` puts first
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            raise
    return {}


def child_quantize(src: str, dst: str, ftype: int, nthread: int, imatrix: str = "") -> dict:
    """``llama_model_quantize``, through the tests' llama.cpp harness (with ``imatrix``, given what
    ``llama-quantize --imatrix FILE`` gives it)."""
    from llama_harness import llama_quantize

    llama_quantize(Path(src), Path(dst), ftype, Path(imatrix) if imatrix else None, nthread=nthread)
    return {}


def child_export(model: str, out: str, file_type: str, mmproj_type: str, name: str, threads: int,
                 imatrix: str = "") -> dict:
    from r1v_quant.pipelines.gguf import export_gguf
    from r1v_quant.read import open_checkpoint
    from r1v_quant.read.imatrix_file import load_imatrix

    ckpt = open_checkpoint(model)
    largest = max(ckpt.info(n).nbytes for n in ckpt.tensor_names)
    before = peak_rss_mb()
    llm, mmproj = export_gguf(ckpt, out, file_type, mmproj_type, name=name, overwrite=True, threads=threads,
                              imatrix=load_imatrix(Path(imatrix)) if imatrix else None)
    return {"files": [str(llm), str(mmproj)], "baseline_rss_mb": before, "largest_tensor_bytes": largest}


CHILDREN = {"build": child_build, "convert": child_convert, "quantize": child_quantize, "export": child_export}


def child_main(kind: str, result: str, args: list[str]) -> None:
    if kind == "build":
        r = child_build(args[0], args[1], int(args[2]), int(args[3]))
    elif kind == "convert":
        r = child_convert(args[0], args[1:])
    elif kind == "quantize":
        r = child_quantize(args[0], args[1], int(args[2]), int(args[3]), *args[4:])
    else:
        r = child_export(args[0], args[1], args[2], args[3], args[4], int(args[5]), *args[6:])
    r.update(peak_rss_mb=peak_rss_mb(), cpu_s=_cpu_s())
    Path(result).write_text(json.dumps(r))


# --- the parent ---------------------------------------------------------------------------------------------
def bench_preset(preset: str, vision_layers: int, llm_layers: int):
    """The preset's widths; the vision tower of the kind llama.cpp runs at this depth (see the module doc)."""
    import dataclasses

    from r1v_quant.demo import PRESETS

    p = PRESETS[preset].with_overrides(vision_layers=vision_layers, llm_layers=llm_layers)
    vision = dataclasses.replace(p.vision, norm_type="layer_norm", qk_normalization=False, qkv_bias=True)
    return dataclasses.replace(p, vision=vision)


def run_child(kind: str, work: Path, *args: str, env: dict | None = None, log: Path | None = None) -> dict:
    """One step in a fresh process; returns its figures plus the parent's wall time and load average."""
    result = work / f".{kind}-{os.getpid()}-{time.monotonic_ns()}.json"
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    with open(log or os.devnull, "a") as out:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind, str(result), *args],
                              env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"step {kind} {' '.join(args)} failed (exit {proc.returncode}); see {log}")
    r = json.loads(result.read_text())
    result.unlink()
    r.update(wall_s=wall, load=(load0, os.getloadavg()[0]))
    print(f"{time.strftime('%H:%M:%S')} {kind} done: {wall:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
    return r


def synthetic_imatrix(model: Path, file_type: str, path: Path) -> None:
    """A seeded importance matrix for every language-model matrix ``llama-imatrix`` records (all but
    token_embd, which is looked up, not multiplied): the speed does not depend on its values, and both
    pipelines read the same file."""
    import torch

    from r1v_quant.read import open_checkpoint
    from r1v_quant.write.gguf.plan import plan_llm
    from r1v_quant.write.imatrix_file import write_imatrix

    plan = plan_llm(open_checkpoint(model), file_type, path, has_imatrix=True)
    g = torch.Generator().manual_seed(0)
    entries = {t.gguf_name: (torch.rand(t.shape[-1], generator=g) * 100 + 0.01, 64) for t in plan.tensors
               if len(t.shape) == 2 and t.gguf_name != "token_embd.weight"}
    write_imatrix(path, entries, ["synthetic (bench_gguf.py)"], chunk_count=1, chunk_size=512, overwrite=True)


def build(model: Path, preset: str, vision_layers: int, llm_layers: int, work: Path) -> None:
    if model.exists():  # input only, seeded: the same bytes a rebuild would write
        print(f"reusing {model}", file=sys.stderr)
        return
    r = run_child("build", work, str(model), preset, str(vision_layers), str(llm_layers), log=work / "build.log")
    print(f"built {model} in {r['wall_s']:.0f} s", file=sys.stderr)


def converter(sdist: Path, work: Path, model: Path, outfile: Path, outtype: str, mmproj: bool) -> dict:
    llama_dir = sdist / "vendor" / "llama.cpp"
    env = dict(os.environ, PYTHONPATH=str(llama_dir / "gguf-py"))
    argv = [str(model), "--outtype", outtype, "--outfile", str(outfile)] + (["--mmproj"] if mmproj else [])
    return run_child("convert", work, str(llama_dir / "convert_hf_to_gguf.py"), *argv, env=env,
                     log=work / "llama-cpp.log")


def gguf_name_of(path: Path) -> str:
    from gguf import GGUFReader

    f = GGUFReader(path).fields["general.name"]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def compare(ours: Path, ref: Path) -> dict:
    """Tensor infos (name, shape, type, in order) and each tensor's data bytes; differing metadata keys."""
    from gguf import GGUFReader

    a, b = GGUFReader(ours), GGUFReader(ref)

    def infos(r):
        return [(t.name, tuple(int(x) for x in t.shape), t.tensor_type.name) for t in r.tensors]

    def meta(r):
        return {k: (list(f.types), [bytes(f.parts[i]) for i in f.data]) for k, f in r.fields.items()
                if not k.startswith("GGUF.")}

    same_info = infos(a) == infos(b)
    tb = {t.name: t for t in b.tensors}
    same = 0
    with open(ours, "rb") as fa, open(ref, "rb") as fb:
        for t in a.tensors:
            u = tb.get(t.name)
            if u is None or int(t.n_bytes) != int(u.n_bytes) or t.tensor_type != u.tensor_type:
                continue
            fa.seek(int(t.data_offset))
            fb.seek(int(u.data_offset))
            left, equal = int(t.n_bytes), True
            while left and equal:
                n = min(left, CHUNK)
                equal = fa.read(n) == fb.read(n)
                left -= n
            same += equal
    ma, mb = meta(a), meta(b)
    diff = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
    return {"tensors": len(a.tensors), "ref_tensors": len(b.tensors), "same_infos": same_info, "same_data": same,
            "meta_diff": diff, "same_file": same_info and same == len(a.tensors) == len(b.tensors) and not diff
            and ours.stat().st_size == ref.stat().st_size}


def gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=None, help="checkpoints and outputs (needs ~30 GB)")
    ap.add_argument("--type", default="q4_k_m", help="language-model type; one llama-quantize makes (default q4_k_m)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts, each a side-by-side run (ours = llama_model_quantize nthread); default 1 2")
    ap.add_argument("--vision-layers", type=int, default=4, help="llama.cpp's converter needs >= 4 (mlp1 mapping)")
    ap.add_argument("--llm-layers", type=int, default=2)
    ap.add_argument("--depth", type=int, nargs="*", default=[2, 4],
                    help="LLM layer counts for the depth check (ours only); empty: skip it")
    ap.add_argument("--depth-only", action="store_true", help="only the depth check (no llama.cpp, no comparison)")
    ap.add_argument("--sdist", type=Path, default=Path(os.environ.get("R1V_LLAMA_CPP_SDIST", DEFAULT_SDIST)))
    ap.add_argument("--preset", default="slice", help="demo preset whose widths to use (tiny: a quick smoke run)")
    ap.add_argument("--keep", action="store_true", help="keep checkpoints, outputs and the intermediate file")
    ap.add_argument("--imatrix", action="store_true",
                    help="both pipelines quantize with the same (seeded, synthetic) importance matrix")
    args = ap.parse_args()
    from r1v_quant.formats.gguf_mix import FILE_TYPES, QUANTIZE

    ft = FILE_TYPES.get(args.type)
    if ft is None or ft.tool != QUANTIZE:
        sys.exit(f"--type must be one llama-quantize makes: {[k for k, v in FILE_TYPES.items() if v.tool == QUANTIZE]}")
    if not (args.sdist / "vendor/llama.cpp/convert_hf_to_gguf.py").is_file():
        sys.exit(f"no llama.cpp converter under {args.sdist}: unpack the llama-cpp-python {LLAMA_CPP_VERSION} sdist "
                 f"(pip download --no-deps --no-binary :all: llama-cpp-python=={LLAMA_CPP_VERSION}) and pass "
                 f"--sdist DIR (the test suite keeps one under .pytest_cache/d/llama-cpp-python-sdist/)")
    temp_work = args.work_dir is None
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-gguf-"))
    work.mkdir(parents=True, exist_ok=True)
    for f in ("build.log", "llama-cpp.log", "ours.log"):
        (work / f).unlink(missing_ok=True)
    load_start = os.getloadavg()

    def model_dir(llm_layers: int) -> Path:
        return work / f"{args.preset}-v{args.vision_layers}-l{llm_layers}"

    if args.depth_only:
        depth(args, work, model_dir, None, None, "bench")
        if temp_work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return
    model = model_dir(args.llm_layers)
    build(model, args.preset, args.vision_layers, args.llm_layers, work)
    imatrix = ""
    if args.imatrix:
        imatrix = str(work / "bench.imatrix.gguf")
        synthetic_imatrix(model, args.type, Path(imatrix))
    ckpt_bytes = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    print(f"\n{model.name}: {args.vision_layers} vision + {args.llm_layers} LLM layers at {args.preset} widths, "
          f"{gb(ckpt_bytes)} GB BF16; --type {args.type}{' --imatrix (synthetic)' if args.imatrix else ''}, "
          f"mmproj F16; threads {' then '.join(map(str, args.threads))}; {os.cpu_count()} CPUs, "
          f"load average {load_start[0]:.2f} at start; page cache warm")
    runs = {n: side_by_side(args, n, work, model, imatrix) for n in args.threads}

    print("\n| threads | r1v-quant wall s / CPU s | llama.cpp wall s / CPU s (convert + quantize + mmproj) "
          "| ratio wall / CPU | peak RSS MB ours / llama.cpp | files identical |")
    print("|---|---|---|---|---|---|")
    for n, (r, steps, same) in runs.items():
        ll_wall, ll_cpu = sum(s["wall_s"] for s in steps.values()), sum(s["cpu_s"] for s in steps.values())
        parts = " + ".join(f"{s['wall_s']:.1f}" for s in steps.values())
        print(f"| {n} | {r['wall_s']:.1f} / {r['cpu_s']:.1f} | {ll_wall:.1f} / {ll_cpu:.1f} ({parts}) "
              f"| {r['wall_s'] / ll_wall:.2f}x / {r['cpu_s'] / ll_cpu:.2f}x "
              f"| {r['peak_rss_mb']:.0f} / {max(s['peak_rss_mb'] for s in steps.values()):.0f} | {same} |")
    if len(runs) > 1:
        (a, (ra, sa, _)), (b, (rb, sb, _)) = list(runs.items())[0], list(runs.items())[-1]
        ll = sum(s["wall_s"] for s in sa.values()) / sum(s["wall_s"] for s in sb.values())
        print(f"\n{a} -> {b} threads, wall time: r1v-quant {ra['wall_s'] / rb['wall_s']:.2f}x faster, "
              f"llama.cpp's pipeline {ll:.2f}x (its converter has no thread option)")

    last = runs[args.threads[-1]][0]
    depth(args, work, model_dir, last, ckpt_bytes, gguf_name_of(Path(last["files"][0])))
    if not args.keep:
        for d in (model, work / "ours"):
            shutil.rmtree(d, ignore_errors=True)
        if temp_work:
            shutil.rmtree(work, ignore_errors=True)


def side_by_side(args: argparse.Namespace, threads: int, work: Path, model: Path, imatrix: str
                 ) -> tuple[dict, dict[str, dict], str]:
    """llama.cpp's pipeline, then ours, at ``threads``; prints each step and compares the files.
    Returns our figures, llama.cpp's steps' figures and whether the files are identical."""
    from r1v_quant.formats.gguf_mix import FILE_TYPES

    ft = FILE_TYPES[args.type]
    ref_dir, ours_dir, inter_dir = work / "llama-cpp", work / "ours", work / "intermediate"
    for d in (ref_dir, ours_dir, inter_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    # llama.cpp: converter -> BF16, llama_model_quantize -> TYPE; converter --mmproj -> F16
    steps = {}
    bf16 = inter_dir / "llm-bf16.gguf"
    ref_llm, ref_mm = ref_dir / f"llm-{args.type}.gguf", ref_dir / "mmproj-f16.gguf"
    steps["convert_hf_to_gguf.py --outtype bf16"] = converter(args.sdist, work, model, bf16, "bf16", False)
    inter_bytes = bf16.stat().st_size
    steps[f"llama_model_quantize {args.type} (nthread {threads})"] = run_child(
        "quantize", work, str(bf16), str(ref_llm), str(int(ft.llama_ftype)), str(threads), imatrix,
        log=work / "llama-cpp.log")
    if not args.keep:
        bf16.unlink()
    steps["convert_hf_to_gguf.py --mmproj --outtype f16"] = converter(args.sdist, work, model, ref_mm, "f16", True)
    name = gguf_name_of(ref_llm)  # the converter's guess, so that general.name agrees

    # ours: one process, both files
    r = run_child("export", work, str(model), str(ours_dir), args.type, "f16", name, str(threads), imatrix,
                  log=work / "ours.log")
    ours_llm, ours_mm = (Path(p) for p in r["files"])
    cmp_llm, cmp_mm = compare(ours_llm, ref_llm), compare(ours_mm, ref_mm)

    print(f"\n{threads} thread(s), llama.cpp steps (intermediate BF16 file {gb(inter_bytes)} GB):")
    for label, s in steps.items():
        print(f"  {label:<46} wall {s['wall_s']:7.1f} s  CPU {s['cpu_s']:7.1f} s  peak RSS {s['peak_rss_mb']:6.0f} MB"
              f"  load {s['load'][0]:.1f}->{s['load'][1]:.1f}")
    print(f"  {'r1v-quant export_gguf (both files)':<46} wall {r['wall_s']:7.1f} s  CPU {r['cpu_s']:7.1f} s  "
          f"peak RSS {r['peak_rss_mb']:6.0f} MB  load {r['load'][0]:.1f}->{r['load'][1]:.1f}")
    for label, c in (("LLM", cmp_llm), ("mmproj", cmp_mm)):
        ok = c["same_infos"] and c["same_data"] == c["tensors"] == c["ref_tensors"]
        print(f"  {label}: tensors identical {'yes' if ok else 'NO'} ({c['same_data']} of {c['ref_tensors']})"
              f"{'; metadata keys that differ: ' + ', '.join(c['meta_diff']) if c['meta_diff'] else ''}")
    same = "yes" if cmp_llm["same_file"] and cmp_mm["same_file"] else "no"
    if not args.keep:
        for d in (ref_dir, inter_dir):
            shutil.rmtree(d, ignore_errors=True)
    return r, steps, same


def depth(args: argparse.Namespace, work: Path, model_dir, r: dict | None, ckpt_bytes: int | None, name: str) -> None:
    """Our export at each ``--depth`` LLM layer count (the side-by-side run stands for its own count)."""
    depth_rows = []
    for n in args.depth:
        if r is not None and n == args.llm_layers:
            depth_rows.append((n, r, ckpt_bytes))
            continue
        m = model_dir(n)
        build(m, args.preset, args.vision_layers, n, work)
        d_out = work / f"ours-depth-{n}"
        shutil.rmtree(d_out, ignore_errors=True)
        rd = run_child("export", work, str(m), str(d_out), args.type, "f16", name, str(args.threads[-1]),
                       log=work / "ours.log")
        depth_rows.append((n, rd, sum(p.stat().st_size for p in m.glob("*.safetensors"))))
        if not args.keep:
            shutil.rmtree(d_out)
            shutil.rmtree(m)
    if depth_rows:
        print(f"\nDepth (ours, --type {args.type} + F16 mmproj, {args.threads[-1]} threads, {args.vision_layers} vision "
              f"layers{'; the ' + str(args.llm_layers) + '-layer row is the side-by-side run' if r else ''}):\n")
        print("| LLM layers | checkpoint GB | wall s | largest tensor MB | RSS after imports MB | peak RSS MB "
              "| peak / largest tensor |")
        print("|---|---|---|---|---|---|---|")
        for n, d, size in sorted(depth_rows):
            largest = d["largest_tensor_bytes"] / 2**20
            print(f"| {n} | {gb(size)} | {d['wall_s']:.1f} | {largest:.0f} | {d['baseline_rss_mb']:.0f} "
                  f"| {d['peak_rss_mb']:.0f} | {d['peak_rss_mb'] / largest:.2f} |")
        if len(depth_rows) > 1:
            rows = sorted(depth_rows)
            print(f"\npeak RSS change from {rows[0][0]} to {rows[-1][0]} LLM layers: "
                  f"{rows[-1][1]['peak_rss_mb'] - rows[0][1]['peak_rss_mb']:+.0f} MB")
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main()
