"""Benchmark, side by side in one run: what a 4-bit vision tower costs, in AWQ and in GGUF.

Run:  python bench/bench_vision.py --work-dir DIR [--calib 16x512] [--eval 8 8] [--threads 2]

On the tiny checkpoint (its vision tower is 128 wide: AWQ's groups of 128 fit it as they fit
InternViT-6B's 3200), against the BF16 reference on held-out eval samples, image and text prompts
apart (mean KL, top-1 agreement):

* AWQ (``validate``, engine): the language model in 4 bits with the vision tower in float16, in 4 bits
  by AWQ (the default), and in 4 bits by plain round-to-nearest of the same modules (the AWQ folder
  with the fp16 tower, its vision linears packed RTN: what quantizing the tower costs without AWQ);
  then ``validate --per-layer`` on the AWQ vision tower (relative weight and output error per layer).
* GGUF (``validate --runtime llama.cpp``): an F16 language model (exact for the BF16 demo weights, so
  what differs is the vision file) with each mmproj type llama.cpp runs: F16, Q8_0, Q5_1, Q5_0, Q4_1,
  Q4_0 (the tower's rows rule out the K-quants); position table rolled for llama.cpp's graph.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import tiny_with_reference  # noqa: E402

MMPROJ_TYPES = ("f16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")


def rtn_vision(src: Path, dst: Path) -> Path:
    """``src`` (an AWQ folder with a float16 vision tower) with every vision linear packed by plain
    round-to-nearest, 4-bit g128: the same modules as AWQ's vision tower, without its search."""
    from safetensors.torch import load_file, save_file

    from r1v_quant.formats.awq_gemm import quantize_groups
    from r1v_quant.read.layout import VISION_LINEARS
    from r1v_quant.write.awq_export import pack_linear

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    shards = sorted(dst.glob("*.safetensors"))
    index = dst / "model.safetensors.index.json"
    weight_map = json.loads(index.read_text())["weight_map"] if index.is_file() else None
    for shard in shards:
        t = load_file(shard)
        for name in [n for n in t if n.startswith("vision_model.encoder.layers.") and n.endswith(".weight")]:
            base = name.removesuffix(".weight")
            if base.endswith(VISION_LINEARS):
                w = t.pop(name)
                t.update(pack_linear(base, *quantize_groups(w.float(), 128)))
                if weight_map is not None:
                    del weight_map[name]
                    weight_map.update({f"{base}.{k}": shard.name for k in ("qweight", "qzeros", "scales")})
        save_file(t, str(shard))
    if weight_map is not None:
        index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    cfg = json.loads((dst / "config.json").read_text())
    cfg["quantization_config"]["modules_to_not_convert"] = ["mlp1", "language_model.lm_head"]
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    (dst / "r1v_quant_awq.json").unlink()  # its record is of the AWQ run, not of this folder
    return dst


def figures(report) -> dict[str, float]:
    return {f"{k}_{g}": round(v[k], 4) for g, v in report.groups.items() for k in ("kl_mean", "top1")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--calib", default="16x512", help="AWQ calibration, SAMPLESxSEQLEN")
    ap.add_argument("--eval", type=int, nargs=2, default=[8, 8], metavar=("IMAGES", "TEXTS"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from r1v_quant.pipelines.awq import AWQRunOptions, quantize_model
    from r1v_quant.pipelines.gguf import export_gguf
    from r1v_quant.pipelines.validate import ValidateOptions, validate_artifact
    from r1v_quant.read import open_checkpoint
    from r1v_quant.validate.report import Thresholds

    work = a.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-vision-"))
    work.mkdir(parents=True, exist_ok=True)
    model, data, ref = tiny_with_reference(work, *a.eval)
    ckpt = open_checkpoint(model)
    loose = Thresholds(max_kl=1e9, min_top1=0.0, max_ppl_ratio=1e9)  # figures, not a gate

    def validate(artifact: Path, **kw) -> object:
        return validate_artifact(artifact, ref, ValidateOptions(data=data, thresholds=loose, threads=a.threads, **kw))

    samples, seq_len = (int(x) for x in a.calib.split("x"))
    rows = []
    for name, vision in (("AWQ, vision float16", False), ("AWQ, vision 4-bit (AWQ)", True)):
        out = work / ("awq-vision-4bit" if vision else "awq-vision-fp16")
        if not (out / "config.json").is_file():
            quantize_model(ckpt, out, AWQRunOptions(samples=samples, seq_len=seq_len, max_tiles=1, vision=vision),
                           overwrite=True)
        rows.append({"artifact": name, **figures(validate(out))})
    rtn = rtn_vision(work / "awq-vision-fp16", work / "awq-vision-rtn")
    rows.append({"artifact": "AWQ, vision 4-bit (round-to-nearest)", **figures(validate(rtn))})
    per_layer = {}
    for name, folder in (("AWQ", work / "awq-vision-4bit"), ("RTN", rtn)):
        r = validate(folder, per_layer=True, source=model, plot=work / f"per-layer-{name}.png")
        per_layer[name] = r.info["per_layer"]["vision_layers"]

    gguf = work / "gguf"
    if not (gguf / "tiny-F16.gguf").is_file():
        export_gguf(ckpt, gguf, "f16", mmproj=False, overwrite=True)
    for t in MMPROJ_TYPES:
        mm = gguf / f"mmproj-tiny-{t.upper()}.gguf"
        if not mm.is_file():
            export_gguf(ckpt, gguf, "f16", t, llm=False, roll_position_embd=True, overwrite=True)
        r = validate(gguf / "tiny-F16.gguf", runtime="llama.cpp", mmproj=mm)
        rows.append({"artifact": f"GGUF F16 + mmproj {t.upper()}, llama.cpp", **figures(r)})

    cols = ["artifact", "kl_mean_image", "top1_image", "kl_mean_text", "top1_text"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    print("\nper vision layer: relative weight error of qkv / proj / fc1 / fc2, output error")
    print("| layer | " + " | ".join(f"{m} {c}" for m in per_layer for c in ("qkv", "proj", "fc1", "fc2", "output"))
          + " |\n|" + "---|" * (1 + 5 * len(per_layer)))
    for i in range(len(per_layer["AWQ"])):
        cells = []
        for m in per_layer:
            row = per_layer[m][i]
            cells += [f"{row['weight_error'][c]:.4f}" for c in ("qkv", "proj", "fc1", "fc2")]
            cells.append(f"{row['output_error']:.4f}")
        print(f"| {i} | " + " | ".join(cells) + " |")
    (work / "results.json").write_text(json.dumps({"rows": rows, "per_layer": per_layer}, indent=2))
    print(f"\nresults: {work / 'results.json'}")


if __name__ == "__main__":
    main()
