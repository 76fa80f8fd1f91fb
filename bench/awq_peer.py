"""Peer benchmark: AutoAWQ 0.2.9 quantizing a Qwen2 language model on CPU.

Run:  python bench/awq_peer.py [--work-dir DIR] [--vocab 152064] [--samples 16] [--sample-len 256]

The ``__main__`` builds a tiny randomly initialised ``Qwen2ForCausalLM`` (hidden 256, 2 layers,
intermediate 640, Qwen2's 152064 vocabulary), saves it with ``save_pretrained`` (bf16, like
Skywork-R1V's LLM), quantizes it with AutoAWQ's defaults (w_bit 4, q_group_size 128, zero_point,
GEMM) from random calibration token ids, saves the quantized model and prints the timings.  It then
reads AutoAWQ's packed tensors back with ``r1v_quant.formats.awq_gemm.unpack_gemm`` and checks that
re-packing them is bit-exact, i.e. that AutoAWQ's own packer and our layout agree.

AutoAWQ is installed separately (it is archived and pins old torch):
    pip install accelerate datasets && pip install --no-deps autoawq==0.2.9

Notes on AutoAWQ's calibration with token ids: every sample longer than ``max_calib_seq_len`` is
dropped, the first ``max_calib_samples`` remaining samples are concatenated and cut into blocks of
``max_calib_seq_len`` tokens (the tail is discarded), so the total must reach one block.
AutoAWQ loads the model in ``torch_dtype`` (its default, float16) and runs the search in that dtype;
float16 matmuls are slow on most CPUs, which dominates the wall time here.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

QUANT_CONFIG = {"w_bit": 4, "q_group_size": 128, "zero_point": True, "version": "GEMM"}  # AutoAWQ defaults


def _peak_rss_mb() -> float:
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _common import peak_rss_mb

        return peak_rss_mb()
    except ImportError:  # pragma: no cover - bench/ moved
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _import_autoawq():
    # awq/__init__ sets a global DeprecationWarning filter and prints a long deprecation notice;
    # record=True swallows both and restores the filters afterwards.
    with warnings.catch_warnings(record=True):
        import awq
        from awq import AutoAWQForCausalLM
        from awq.utils.utils import get_best_device
    return awq, AutoAWQForCausalLM, get_best_device


def run_autoawq(
    model_dir: Path,
    out_dir: Path,
    calib_token_ids: list[list[int]],
    group_size: int = 128,
    *,
    torch_dtype: torch.dtype = torch.float16,
    max_calib_samples: int = 128,
    max_calib_seq_len: int = 512,
) -> dict:
    """Quantize the HF Qwen2 checkpoint in ``model_dir`` with AutoAWQ on CPU; save it to ``out_dir``.

    Quantization settings are AutoAWQ's defaults (w_bit 4, zero_point, GEMM; ``group_size`` 128), as
    are ``torch_dtype``, ``max_calib_samples`` and ``max_calib_seq_len``.  Returns timings (seconds)
    and what was used: ``wall_s`` (load + quantize + save), ``load_s``, ``quantize_s``, ``save_s``,
    ``peak_rss_mb``, ``calib_blocks``, ``device``, ``autoawq``, ``quant_config``, ``out_dir``.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    usable = [list(map(int, s)) for s in calib_token_ids if 0 < len(s) <= max_calib_seq_len]
    usable = usable[:max_calib_samples]
    total = sum(len(s) for s in usable)
    if total < max_calib_seq_len:
        raise ValueError(
            f"AutoAWQ needs at least {max_calib_seq_len} calibration tokens in samples no longer than "
            f"{max_calib_seq_len} (it concatenates them and cuts blocks of that length); got {total}"
        )
    blocks = total // max_calib_seq_len

    awq, AutoAWQForCausalLM, get_best_device = _import_autoawq()
    device = get_best_device()
    if device != "cpu":
        raise RuntimeError(f"AutoAWQ would run on {device}; this benchmark is the CPU peer (hide the accelerator)")
    quant_config = dict(QUANT_CONFIG, q_group_size=group_size)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = AutoAWQForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch_dtype, device_map="cpu")
        t1 = time.perf_counter()
        model.quantize(
            None,  # no tokenizer: the calibration is already token ids
            quant_config=quant_config,
            calib_data=usable,
            max_calib_samples=max_calib_samples,
            max_calib_seq_len=max_calib_seq_len,
        )
        t2 = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_quantized(str(out_dir))
        t3 = time.perf_counter()
    return {
        "wall_s": t3 - t0,
        "load_s": t1 - t0,
        "quantize_s": t2 - t1,
        "save_s": t3 - t2,
        "peak_rss_mb": _peak_rss_mb(),
        "calib_blocks": blocks,
        "calib_tokens_used": blocks * max_calib_seq_len,
        "device": device,
        "torch_dtype": str(torch_dtype).removeprefix("torch."),
        "autoawq": awq.__version__,
        "quant_config": quant_config,
        "out_dir": str(out_dir),
    }


def build_tiny_qwen2(path: Path, vocab: int = 152064, seed: int = 0) -> Path:
    """A randomly initialised Qwen2ForCausalLM (hidden 256, 2 layers, intermediate 640), saved in bf16."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=640,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(path)
    return path


def check_layout(out_dir: Path) -> int:
    """Unpack every AutoAWQ-packed linear with our reader and re-pack it: must be bit-exact."""
    from safetensors import safe_open

    from r1v_quant.formats.awq_gemm import pack_gemm, unpack_gemm

    checked = 0
    for f in sorted(out_dir.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for key in st.keys():
                if not key.endswith(".qweight"):
                    continue
                stem = key.removesuffix(".qweight")
                packed = {n: st.get_tensor(f"{stem}.{n}") for n in ("qweight", "qzeros", "scales")}
                again = pack_gemm(*unpack_gemm(**packed))
                for n, t in packed.items():
                    if not torch.equal(again[n], t):
                        raise AssertionError(f"{stem}.{n}: our re-pack differs from AutoAWQ's")
                checked += 1
    return checked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=None, help="where to write both models (default: a temp dir)")
    ap.add_argument("--vocab", type=int, default=152064)
    ap.add_argument("--samples", type=int, default=16, help="calibration samples (random token ids)")
    ap.add_argument("--sample-len", type=int, default=256, help="tokens per calibration sample")
    ap.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16",
                    help="dtype AutoAWQ loads and searches in (its default: float16)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        model_dir = build_tiny_qwen2(work / "qwen2-tiny", vocab=args.vocab)
        g = torch.Generator().manual_seed(1)
        calib = [torch.randint(0, args.vocab, (args.sample_len,), generator=g).tolist() for _ in range(args.samples)]
        res = run_autoawq(model_dir, work / "qwen2-tiny-awq", calib, torch_dtype=getattr(torch, args.dtype))
        res["linears_layout_checked"] = check_layout(Path(res["out_dir"]))
        res["threads"] = torch.get_num_threads()
        print(json.dumps(res, indent=2))
        print(f"AutoAWQ on CPU: {res['wall_s']:.1f} s wall ({res['quantize_s']:.1f} s quantize)")


if __name__ == "__main__":
    main()
