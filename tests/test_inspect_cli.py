"""``inspect`` and the CLI surface."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sparse_checkpoint import write_sparse_checkpoint

from r1v_quant import __version__
from r1v_quant.cli.app import main
from r1v_quant.formats.gguf_mix import llm_tensor_type, use_more_bits
from r1v_quant.write.sizes import GB


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_version_and_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"r1v-quant {__version__}"
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "inspect" in proc.stdout and "demo-checkpoint" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "inspect", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--gpu-mem" in proc.stdout and "--context" in proc.stdout


def _fit(r: dict, name: str, kv_type: str = "f16") -> dict:
    return next(f for f in r["fit"] if f["name"] == name and f["kv_type"] == kv_type)


def test_inspect_json_on_tiny(tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_json(["inspect", str(tiny_ckpt), "--json"], capsys)
    assert r["llm"]["layers"] == 3 and r["vision"]["norm"] == "layer_norm"
    comps = r["components"]
    assert set(comps) == {"vision", "projector", "llm"} and comps["llm"]["layers"] == 3
    # mlp1: LayerNorm(4v), Linear(4v -> l), GELU, Linear(l -> l); pixel shuffle makes the input 4 x vision width
    v, l = 4 * r["vision"]["width"], r["llm"]["width"]
    assert comps["projector"]["params"] == 2 * v + v * l + l + l * l + l
    assert r["total"] == {"params": sum(c["params"] for c in comps.values()),
                          "bytes": sum(c["bytes"] for c in comps.values())}
    assert sum(s["tensors"] for s in r["shards"]) == 105
    files = {f["name"]: f["bytes"] for f in r["files"]}
    assert files["BF16 (source layout)"] == r["total"]["bytes"]
    assert files["GGUF Q4_K_M"] < files["GGUF Q8_0"] < files["GGUF F16"]
    assert files["mmproj Q8_0"] < files["mmproj F16"]
    assert files["AWQ 4-bit g128, vision 4-bit"] < files["AWQ 4-bit g128, vision fp16"] < files["BF16 (source layout)"]
    # a tiny model fits the smallest GPU of the table at every context
    assert all(c["smallest_gpu_gb"] == 24 for f in r["fit"] for c in f["contexts"].values())


def test_inspect_table(tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_ckpt)]) == 0
    text = capsys.readouterr().out
    for part in ("Components", "Shards", "Output files", "GPU need", "Q4_K_M", "AWQ", "total"):
        assert part in text


def test_inspect_real_38b_geometry_from_metadata_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """77 GB of (sparse) shards with the real 38B shapes: inspect answers at once, from headers alone."""
    model = write_sparse_checkpoint(tmp_path / "r1v-38b")
    start = time.perf_counter()
    r = run_json(["inspect", str(model), "--json", "--gpu-mem", "30", "--context", "8192"], capsys)
    assert time.perf_counter() - start < 10
    assert 38.0e9 < r["total"]["params"] < 38.8e9  # SPEC: ~38.4B
    assert 5.4e9 < r["components"]["vision"]["params"] < 5.7e9
    assert r["components"]["llm"]["layers"] == 64 and r["components"]["vision"]["layers"] == 45
    files = {f["name"]: f["bytes"] for f in r["files"]}
    assert 76e9 < files["BF16 (source layout)"] < 78e9
    assert 11.0e9 < files["mmproj F16"] < 11.5e9  # 5.63B vision + projector parameters in F16, a few F32
    assert 5.7e9 < files["mmproj Q8_0"] < 6.2e9
    assert 18.5e9 < files["GGUF Q4_K_M"] < 21.5e9  # ~4.85 bits per weight over 32.8B
    assert files["GGUF F16"] > 3 * files["GGUF Q4_K_M"]
    assert 29e9 < files["AWQ 4-bit g128, vision fp16"] < 32e9
    assert 21e9 < files["AWQ 4-bit g128, vision 4-bit"] < 24e9
    # KV cache: 2 (K,V) x 64 layers x 8 heads x 128 x 8192 tokens x 2 bytes; llama.cpp's q8_0 cache: 34/32 bytes
    at_8k = _fit(r, "AWQ 4-bit, vision fp16")["contexts"]["8192"]
    assert at_8k["kv_bytes"] == 2 * 64 * 8 * 128 * 8192 * 2
    assert _fit(r, "GGUF Q4_K_M + mmproj F16", "q8_0")["contexts"]["8192"]["kv_bytes"] == 2 * 64 * 8 * 128 * 8192 * 34 // 32
    # the point of the project: 4-bit vision AWQ and Q4_K_M + Q8_0 mmproj fit 30 GB at 8k; fp16 vision does not
    assert not at_8k["fits"]["30"] and at_8k["smallest_gpu_gb"] == 40
    assert not _fit(r, "AWQ 4-bit, vision fp16")["fits_chosen"]
    assert _fit(r, "AWQ 4-bit, vision 4-bit")["fits_chosen"]
    assert _fit(r, "GGUF Q4_K_M + mmproj Q8_0")["fits_chosen"]
    assert not _fit(r, "GGUF Q4_K_M + mmproj F16")["fits_chosen"]
    assert not _fit(r, "BF16 (source)")["contexts"]["8192"]["fits"]["80"]
    assert r["gpu_mem_gb"] == 30 and r["context"] == 8192
    # a size outside the table joins it
    r = run_json(["inspect", str(model), "--json", "--gpu-mem", "36", "--context", "8192"], capsys)
    assert 36 in r["gpus_gb"] and _fit(r, "AWQ 4-bit, vision fp16")["fits_chosen"]


def test_q4_k_m_mix_follows_llama_cpp_rules() -> None:
    n = 64
    more = [i for i in range(n) if use_more_bits(i, n)]
    assert len(more) == 32  # SPEC: for 64 layers, 32 layers get the larger types
    shape = (5120, 27648)
    assert llm_tensor_type("q4_k_m", "blk.0.ffn_down.weight", shape, 0, n).name == "Q6_K"
    assert llm_tensor_type("q4_k_m", "blk.9.ffn_down.weight", shape, 9, n).name == "Q4_K"
    assert llm_tensor_type("q4_k_m", "blk.9.ffn_up.weight", (27648, 5120), 9, n).name == "Q4_K"
    assert llm_tensor_type("q4_k_m", "output.weight", (152064, 5120), None, n).name == "Q6_K"
    assert llm_tensor_type("q4_k_m", "token_embd.weight", (152064, 5120), None, n).name == "Q4_K"
    assert llm_tensor_type("q8_0", "output.weight", (152064, 5120), None, n).name == "Q8_0"
    assert llm_tensor_type("q4_k_m", "blk.0.attn_norm.weight", (5120,), 0, n).name == "F32"
    # rows not a multiple of 256 fall back: Q4_K -> Q5_0, Q6_K -> Q8_0
    assert llm_tensor_type("q4_k_m", "blk.0.ffn_down.weight", (256, 640), 1, 3).name == "Q5_0"
    assert llm_tensor_type("q4_k_m", "blk.2.ffn_down.weight", (256, 640), 2, 3).name == "Q8_0"
    assert GB == 1e9
