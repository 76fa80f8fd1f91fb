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


def test_version_and_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"r1v-quant {__version__}"
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "inspect" in proc.stdout and "demo-checkpoint" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "inspect", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--gpu-mem" in proc.stdout and "--context" in proc.stdout


def test_inspect_json_on_tiny(tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_json(["inspect", str(tiny_ckpt), "--json"], capsys)
    assert r["llm"]["layers"] == 3 and r["vision"]["norm"] == "layer_norm"
    comps = r["components"]
    assert set(comps) == {"vision", "projector", "llm"} and comps["llm"]["layers"] == 3
    assert comps["projector"]["params"] == 256 * 2 + 256 * 256 + 256 + 256 * 256 + 256
    assert sum(s["tensors"] for s in r["shards"]) == 105
    outputs = {o["name"]: o for o in r["outputs"]}
    bf16 = outputs["BF16 (source layout)"]["file_bytes"]
    assert bf16 == sum(c["bytes"] for c in comps.values())
    assert outputs["GGUF Q4_K_M + mmproj F16"]["file_bytes"] < outputs["GGUF Q8_0 + mmproj F16"]["file_bytes"] < bf16
    assert all(o["fits"] for o in r["outputs"])


def test_inspect_table(tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_ckpt)]) == 0
    text = capsys.readouterr().out
    assert "Components" in text and "Shards" in text and "Q4_K_M" in text and "AWQ" in text


def test_inspect_real_38b_geometry_from_metadata_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """77 GB of (sparse) shards with the real 38B shapes: inspect answers at once, from headers alone."""
    model = write_sparse_checkpoint(tmp_path / "r1v-38b")
    start = time.perf_counter()
    r = run_json(["inspect", str(model), "--json", "--gpu-mem", "30", "--context", "8192"], capsys)
    assert time.perf_counter() - start < 10
    params = sum(c["params"] for c in r["components"].values())
    assert 38.0e9 < params < 38.8e9  # SPEC: ~38.4B
    assert 5.4e9 < r["components"]["vision"]["params"] < 5.7e9
    assert r["components"]["llm"]["layers"] == 64 and r["components"]["vision"]["layers"] == 45
    out = {o["name"]: o for o in r["outputs"]}
    assert 76e9 < out["BF16 (source layout)"]["file_bytes"] < 78e9
    assert not out["BF16 (source layout)"]["fits"]
    # KV cache: 2 (K,V) x 64 layers x 8 heads x 128 x 8192 tokens x 2 bytes
    assert out["AWQ 4-bit g128 (vision fp16)"]["kv_bytes"] == 2 * 64 * 8 * 128 * 8192 * 2
    mmproj = out["mmproj F16 alone"]["file_bytes"]
    assert 11.0e9 < mmproj < 11.5e9  # 5.63B vision + projector parameters in F16, a few F32
    q4_llm = out["GGUF Q4_K_M + mmproj F16"]["file_bytes"] - mmproj
    assert 18.5e9 < q4_llm < 21.5e9  # ~4.85 bits per weight over 32.8B
    assert out["GGUF F16 + mmproj F16"]["file_bytes"] - mmproj > 3 * q4_llm
    awq = out["AWQ 4-bit g128 (vision fp16)"]
    assert 29e9 < awq["file_bytes"] < 32e9 and not awq["fits"]  # 30 GB is too tight with an 8k context
    assert main(["inspect", str(model), "--json", "--gpu-mem", "40"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"][1]["fits"]
    assert r["gpu_mem_gb"] == 30 and out["mmproj F16 alone"]["kv_bytes"] == 0


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
