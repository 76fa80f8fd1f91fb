"""Bad input: one clear line naming the file, exit code 2, no traceback, nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from r1v_quant.cli.app import main


def clone(src: Path, dst: Path) -> Path:
    """Hard-link copy; a test that changes a file must replace it (``rewrite``), never edit in place."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def rewrite(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def run_inspect(model: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["inspect", str(model)])
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def shard_of(model: Path, tensor: str) -> Path:
    index = json.loads((model / "model.safetensors.index.json").read_text())
    return model / index["weight_map"][tensor]


def test_missing_config(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    (m / "config.json").unlink()
    assert "config.json not found" in run_inspect(m, capsys)


def test_config_not_json(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    rewrite(m / "config.json", b"{not json")
    line = run_inspect(m, capsys)
    assert "config.json" in line and "not valid JSON" in line


@pytest.mark.parametrize("field,value,expect", [
    ("architectures", ["LlavaForConditionalGeneration"], "unsupported architecture 'LlavaForConditionalGeneration'"),
    ("llm_config.architectures", ["InternLM2ForCausalLM"], "unsupported language model 'InternLM2ForCausalLM'"),
    ("vision_config.norm_type", "batch_norm", "vision_config.norm_type should be one of"),
    ("llm_config.hidden_size", None, "llm_config.hidden_size is missing"),
    ("ps_version", "v3", "ps_version should be v1 or v2"),
])
def test_unusable_config(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         field: str, value: object, expect: str) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    raw = json.loads((m / "config.json").read_text())
    *parents, key = field.split(".")
    obj = raw
    for p in parents:
        obj = obj[p]
    if value is None:
        del obj[key]
    else:
        obj[key] = value
    if key == "architectures" and not parents:
        raw["model_type"] = "llava"
    rewrite(m / "config.json", json.dumps(raw).encode())
    line = run_inspect(m, capsys)
    assert expect in line and "config.json" in line


def test_missing_shard(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    shard = shard_of(m, "mlp1.1.weight")
    shard.unlink()
    line = run_inspect(m, capsys)
    assert shard.name in line and "shard missing" in line


def test_truncated_shard(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    shard = shard_of(m, "language_model.lm_head.weight")
    data = shard.read_bytes()
    rewrite(shard, data[: len(data) - 1000])
    line = run_inspect(m, capsys)
    assert shard.name in line and "truncated shard" in line


def test_shard_cut_inside_header(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    shard = shard_of(m, "mlp1.1.weight")
    rewrite(shard, shard.read_bytes()[:100])
    line = run_inspect(m, capsys)
    assert shard.name in line and "truncated" in line


def test_corrupt_header(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    shard = shard_of(m, "mlp1.1.weight")
    data = bytearray(shard.read_bytes())
    data[8:12] = b"\xff\xfe\x00["
    rewrite(shard, bytes(data))
    line = run_inspect(m, capsys)
    assert shard.name in line and "corrupt safetensors header" in line


def test_tensor_in_index_but_absent(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    index = json.loads((m / "model.safetensors.index.json").read_text())
    index["weight_map"]["language_model.model.layers.0.mlp.up_proj.weight"] = index["weight_map"]["mlp1.1.weight"]
    rewrite(m / "model.safetensors.index.json", json.dumps(index).encode())
    line = run_inspect(m, capsys)
    assert "'language_model.model.layers.0.mlp.up_proj.weight' listed in the index but absent" in line


def test_tensor_missing_from_checkpoint(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    index = json.loads((m / "model.safetensors.index.json").read_text())
    del index["weight_map"]["language_model.model.layers.2.self_attn.k_proj.bias"]
    rewrite(m / "model.safetensors.index.json", json.dumps(index).encode())
    line = run_inspect(m, capsys)
    assert "'language_model.model.layers.2.self_attn.k_proj.bias' expected by config.json is missing" in line


def test_shape_disagrees_with_config(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    raw = json.loads((m / "config.json").read_text())
    raw["llm_config"]["intermediate_size"] = 512
    rewrite(m / "config.json", json.dumps(raw).encode())
    line = run_inspect(m, capsys)
    assert "has shape [640, 256], config.json implies [512, 256]" in line
    assert ".safetensors" in line


def test_non_float_dtype(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    name = "mlp1.3.weight"
    shard = shard_of(m, name)
    tensors = load_file(shard)
    tensors[name] = tensors[name].to(torch.int32)
    shard.unlink()
    save_file(tensors, shard)
    line = run_inspect(m, capsys)
    assert f"'{name}' has non-float dtype I32" in line and shard.name in line


def test_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such directory" in run_inspect(tmp_path / "nope", capsys)
    (tmp_path / "file").write_text("x")
    assert "not a directory" in run_inspect(tmp_path / "file", capsys)


def test_unreadable_directory(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    m = clone(tiny_ckpt, tmp_path / "m")
    if os.geteuid() != 0:  # root reads everything; there the OS error is simulated
        m.chmod(0)
        try:
            assert "permission denied" in run_inspect(m, capsys)
        finally:
            m.chmod(0o755)
    real_listdir = os.listdir

    def denied(path: object) -> list[str]:
        if Path(str(path)) == m:
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "listdir", denied)
    assert "permission denied" in run_inspect(m, capsys)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "--debug", "inspect", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_console_script_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "inspect", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope'}: no such directory"
