"""Benchmark, side by side in one run: r1v-quant AWQ vs AutoAWQ 0.2.9 vs round-to-nearest.

Run:  python bench/bench_awq.py [--model DIR] [--work-dir DIR] [--calib-samples 16] [--seq-len 512]
                                [--eval-images 8 --eval-texts 8]

On a demo checkpoint's language model (default: a fresh ``tiny`` one), with the same calibration
token budget for all three:
* r1v-quant: ``quantize_model`` on calibration samples from ``calib_data/`` (images through the
  vision tower and projector, spliced into the LLM input) ;
* AutoAWQ: its defaults (w4, g128, zero point, GEMM, text calibration) on the same samples' text,
  as token ids, on the language model exported as a plain ``Qwen2ForCausalLM`` folder;
* RTN: plain min/max 4-bit g128 of every decoder linear, no search.
Each runs in a fresh process (wall time, peak RSS via VmHWM).  Each result is then run through
the forward engine (its decoder layers, norms included, as the artifact stores them; embeddings
and lm_head from the source) on held-out eval samples, and compared with the BF16 reference:
mean KL and top-1 agreement, image prompts and text prompts separately.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import eval_subset, peak_rss_mb  # noqa: E402


# --- the three quantizers, each in a child process ------------------------------------------------
def child_ours(model: str, out: str, samples: int, seq_len: int, propagate: str) -> dict:
    import time

    from r1v_quant.pipelines.awq import AWQRunOptions, quantize_model
    from r1v_quant.read import open_checkpoint

    t = time.perf_counter()
    s = quantize_model(open_checkpoint(model), Path(out), AWQRunOptions(samples=samples, seq_len=seq_len,
                                                                         max_tiles=1, propagate=propagate),
                       overwrite=True)
    return {"wall_s": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(), "tokens": s["calibration"]["tokens"],
            "image_tokens": s["calibration"]["image_tokens"]}


def child_rtn(model: str, out: str) -> dict:
    import time

    from safetensors.torch import save_file

    from r1v_quant.formats.awq_gemm import pack_gemm, quantize_groups
    from r1v_quant.read import open_checkpoint
    from r1v_quant.read.layout import LLM_LINEARS

    t = time.perf_counter()
    ckpt = open_checkpoint(model)
    Path(out).mkdir(parents=True, exist_ok=True)
    for i in range(ckpt.config.llm.num_layers):
        unit = ckpt.load_unit(f"llm.layer.{i}")
        tensors = {}
        for name, w in unit.tensors.items():
            base = name.removesuffix(".weight")
            if base.endswith(LLM_LINEARS):
                packed = pack_gemm(*quantize_groups(w.float(), 128))
                tensors.update({base + "." + k: v for k, v in packed.items()})
            else:
                tensors[name] = w.to(torch.float16)
        save_file(tensors, str(Path(out) / f"layer-{i}.safetensors"))
    return {"wall_s": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}


def child_autoawq(hf_dir: str, out: str, tokens_file: str) -> dict:
    from awq_peer import run_autoawq

    ids = json.loads(Path(tokens_file).read_text())
    r = run_autoawq(Path(hf_dir), Path(out), ids, max_calib_samples=len(ids), max_calib_seq_len=512)
    r["peak_rss_mb"] = peak_rss_mb()
    return r


# --- preparation in the parent --------------------------------------------------------------------
def export_qwen2(model: Path, out: Path) -> None:
    """The language model as a plain Qwen2ForCausalLM folder (AutoAWQ knows no InternVL)."""
    from safetensors.torch import save_file

    from r1v_quant.read import open_checkpoint

    ckpt = open_checkpoint(model)
    out.mkdir(parents=True, exist_ok=True)
    llm = dict(ckpt.config.raw["llm_config"])
    llm["architectures"] = ["Qwen2ForCausalLM"]
    (out / "config.json").write_text(json.dumps(llm, indent=2))
    save_file({n.removeprefix("language_model."): ckpt.read_tensor(n) for n in ckpt.tensor_names
               if n.startswith("language_model.")}, str(out / "model.safetensors"))
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "generation_config.json"):
        (out / f).write_bytes((model / f).read_bytes())


def text_calibration(model: Path, samples: int, seq_len: int, budget: int) -> list[list[int]]:
    """The same calibration samples as text only (image placeholders dropped), as token ids,
    cut into 512-token blocks up to ``budget`` tokens (AutoAWQ's own block length)."""
    from transformers import AutoTokenizer

    from r1v_quant.calibrate.dataset import default_data_path, load_samples

    tok = AutoTokenizer.from_pretrained(str(model), trust_remote_code=False)
    ids: list[int] = []
    for s in load_samples(default_data_path("calib"))[:samples]:
        msgs = [{"role": m["role"], "content": m["content"].replace("<image>\n", "").replace("<image>", "")}
                for m in s.messages]
        text = tok.apply_chat_template(msgs, tokenize=False)
        ids += tok(text, add_special_tokens=False)["input_ids"][:seq_len]
    ids = ids[: max(512, budget - budget % 512)]
    return [ids[i: i + 512] for i in range(0, len(ids) - 511, 512)]


# --- evaluation ---------------------------------------------------------------------------------
def layer_tensors(kind: str, path: Path, layer: int) -> dict[str, torch.Tensor]:
    """Decoder layer ``layer`` of an artifact, dequantized, named as in the source checkpoint."""
    from safetensors.torch import load_file

    from r1v_quant.formats.awq_gemm import dequantize, unpack_gemm

    if kind == "rtn":
        raw = load_file(str(path / f"layer-{layer}.safetensors"))
    else:
        raw = {}
        for f in sorted(path.glob("*.safetensors")):
            raw.update(load_file(str(f)))
    prefix = "language_model.model.layers." if kind != "autoawq" else "model.layers."
    mine = {k: v for k, v in raw.items() if k.startswith(f"{prefix}{layer}.")}
    out = {}
    for k, v in mine.items():
        name = "language_model.model.layers." + k.removeprefix(prefix)
        if k.endswith(".qweight"):
            base = k.removesuffix(".qweight")
            w = dequantize(*unpack_gemm(v, raw[base + ".qzeros"], raw[base + ".scales"]), 128)
            out[name.removesuffix(".qweight") + ".weight"] = w
        elif not k.endswith((".qzeros", ".scales")):
            out[name] = v.float()
    return out


def evaluate(model: Path, ref_path: Path, data: Path, kind: str | None, artifact: Path | None) -> dict:
    from r1v_quant.calibrate.dataset import load_samples
    from r1v_quant.calibrate.prompts import prepare_samples
    from r1v_quant.engine import Engine
    from r1v_quant.read import open_checkpoint
    from r1v_quant.validate.metrics import kl_estimate
    from r1v_quant.validate.reference_file import load_reference, scored_positions

    ckpt = open_checkpoint(model)
    ref = load_reference(ref_path)
    t = ref.tensors
    prepared = prepare_samples(ckpt, load_samples(data), ref.meta["options"]["max_tiles"])

    class WithLayers:
        """The source model with its decoder layers taken from the artifact."""

        config = ckpt.config

        def load_unit(self, name):
            unit = ckpt.load_unit(name)
            if artifact is not None and name.startswith("llm.layer."):
                unit.tensors = layer_tensors(kind, artifact, unit.layer)
            return unit

    kls: list[torch.Tensor] = []
    top1: list[torch.Tensor] = []
    rows_all = 0

    def on_logits(i: int, pos: torch.Tensor, logits: torch.Tensor) -> None:
        nonlocal rows_all
        lp = torch.log_softmax(logits.float(), -1)
        rows = slice(rows_all, rows_all + len(pos))
        rows_all += len(pos)
        kls.append(kl_estimate(t["topk.ids"][rows], t["topk.logprobs"][rows], t["tail.ids"][rows],
                               t["tail.logprobs"][rows], t["pos.tail_mass"][rows], lp))
        top1.append(lp.argmax(-1) == t["topk.ids"][rows, 0])

    Engine(WithLayers()).run(prepared, on_logits, [scored_positions(p) for p in prepared])
    kl, agree = torch.cat(kls), torch.cat(top1).float()
    has_image = torch.tensor([s["has_image"] for s in ref.meta["samples"]])[t["pos.sample"].long()]
    out = {}
    for name, mask in (("image", has_image), ("text", ~has_image)):
        out[f"kl_{name}"] = float(kl[mask].mean())
        out[f"top1_{name}"] = float(agree[mask].mean())
    return out


def run_child(*args: str, cache: Path | None = None) -> dict:
    """Run one quantizer in a fresh process; with ``cache``, reuse a finished run's figures."""
    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"child {args[0]} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if cache is not None:
        cache.write_text(json.dumps(result))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--calib-samples", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--eval-images", type=int, default=8)
    ap.add_argument("--eval-texts", type=int, default=8)
    ap.add_argument("--float-propagation", action="store_true",
                    help="also run r1v-quant with --propagate float (AutoAWQ's choice)")
    args = ap.parse_args()
    from r1v_quant.calibrate.dataset import load_samples
    from r1v_quant.demo import PRESETS, build_demo_checkpoint
    from r1v_quant.pipelines.reference import ReferenceOptions, compute_reference
    from r1v_quant.read import open_checkpoint
    from r1v_quant.validate.reference_file import save_reference

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-awq-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or work / "tiny"
    if not model.exists():
        build_demo_checkpoint(model, PRESETS["tiny"])
    data = eval_subset(work / "eval.jsonl", args.eval_images, args.eval_texts)
    ref_path = work / "ref.r1vref"
    if not ref_path.exists():
        save_reference(ref_path, compute_reference(open_checkpoint(model), load_samples(data), data,
                                                   ReferenceOptions(max_tiles=1)))

    results = {"r1v-quant AWQ": run_child("ours", str(model), str(work / "ours"), str(args.calib_samples),
                                          str(args.seq_len), "quantized", cache=work / "ours.json")}
    budget = results["r1v-quant AWQ"]["tokens"]
    tokens_file = work / "calib_tokens.json"
    blocks = text_calibration(model, 10 * args.calib_samples, args.seq_len, budget)
    tokens_file.write_text(json.dumps(blocks))
    export_qwen2(model, work / "qwen2")
    results["AutoAWQ 0.2.9"] = run_child("autoawq", str(work / "qwen2"), str(work / "autoawq"), str(tokens_file),
                                         cache=work / "autoawq.json")
    results["AutoAWQ 0.2.9"]["tokens"] = sum(len(b) for b in blocks)
    results["RTN"] = run_child("rtn", str(model), str(work / "rtn"), cache=work / "rtn.json")
    dirs = {"r1v-quant AWQ": ("ours", work / "ours"), "AutoAWQ 0.2.9": ("autoawq", work / "autoawq"),
            "RTN": ("rtn", work / "rtn")}
    if args.float_propagation:
        results["r1v AWQ, float prop."] = run_child(
            "ours", str(model), str(work / "ours-float"), str(args.calib_samples), str(args.seq_len), "float",
            cache=work / "ours-float.json")
        dirs["r1v AWQ, float prop."] = ("ours", work / "ours-float")
    base = evaluate(model, ref_path, data, None, None)
    for name, (kind, path) in dirs.items():
        results[name].update(evaluate(model, ref_path, data, kind, path))

    print(f"model {model}, eval {args.eval_images} image + {args.eval_texts} text samples; "
          f"unquantized engine vs reference: KL image {base['kl_image']:.2e}, text {base['kl_text']:.2e}")
    print(f"{'method':<16} {'calib tokens':>12} {'image tok':>9} {'wall s':>7} {'peak RSS MB':>11} "
          f"{'KL image':>9} {'KL text':>9} {'top1 img':>8} {'top1 txt':>8}")
    for name, r in results.items():
        print(f"{name:<16} {r.get('tokens', 0):>12} {r.get('image_tokens', 0):>9} {r['wall_s']:>7.1f} "
              f"{r['peak_rss_mb']:>11.0f} {r['kl_image']:>9.4f} {r['kl_text']:>9.4f} {r['top1_image']:>8.3f} "
              f"{r['top1_text']:>8.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "ours":
            print(json.dumps(child_ours(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4])))
        elif kind == "rtn":
            print(json.dumps(child_rtn(rest[0], rest[1])))
        else:
            print(json.dumps(child_autoawq(rest[0], rest[1], rest[2])))
    else:
        main()
