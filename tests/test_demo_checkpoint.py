"""Demo checkpoints: real layout, real Qwen2 tokenizer, deterministic, realistic outliers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from r1v_quant.cli.app import main
from r1v_quant.demo import PRESETS, build_demo_checkpoint
from r1v_quant.demo.build import CUSTOM_CODE_FILES
from r1v_quant.demo.tokenizer import R1_DISTILL_BOS, TOKENIZER_FILES, build_tokenizer, write_tokenizer_files
from r1v_quant.demo.weights import make_tensor
from r1v_quant.read import open_checkpoint

DATA = Path(__file__).parent / "data"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_layout_matches_a_real_checkpoint(tiny_ckpt: Path) -> None:
    files = {p.name for p in tiny_ckpt.iterdir()}
    assert {"config.json", "model.safetensors.index.json", "generation_config.json", "preprocessor_config.json",
            "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", *CUSTOM_CODE_FILES} <= files
    shards = sorted(f for f in files if f.endswith(".safetensors"))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    raw = json.loads((tiny_ckpt / "config.json").read_text())
    for key in ("architectures", "auto_map", "downsample_ratio", "dynamic_image_size", "force_image_size",
                "llm_config", "max_dynamic_patch", "min_dynamic_patch", "ps_version", "select_layer", "template",
                "use_thumbnail", "vision_config"):
        assert key in raw, key
    assert raw["llm_config"]["architectures"] == ["Qwen2ForCausalLM"]
    assert raw["vision_config"]["architectures"] == ["InternVisionModel"]


def test_tokenizer_reproduces_llama_cpp_test_strings() -> None:
    """llama.cpp ships test strings with the token ids the real Qwen2 tokenizer gives them."""
    inputs = (DATA / "qwen2-vocab.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    outputs = (DATA / "qwen2-vocab.out").read_text(encoding="utf-8").split("\n")
    tok = build_tokenizer()
    pairs = list(zip(inputs, outputs))
    assert len(pairs) == 47
    for text, ids in pairs:
        assert tok.encode(text, add_special_tokens=False).ids == [int(x) for x in ids.split()], repr(text)


def test_transformers_loads_the_tokenizer_with_chat_tokens(tiny_ckpt: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    ids = tok("<img><IMG_CONTEXT><IMG_CONTEXT></img>", add_special_tokens=False).input_ids
    assert len(ids) == 4 and ids[1] == ids[2] == tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert tok.eos_token == "<|im_end|>"
    prompt = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    cfg = open_checkpoint(tiny_ckpt).config
    assert max(tok.get_vocab().values()) < cfg.llm.vocab_size


@pytest.mark.parametrize("bos", [None, R1_DISTILL_BOS])
def test_tokenizer_files_are_the_listed_ones_and_bos_comes_first(bos: str | None, tmp_path: Path) -> None:
    write_tokenizer_files(tmp_path, 32768, bos=bos)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(TOKENIZER_FILES)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    plain = tok.encode("Hello world", add_special_tokens=False)
    assert tok.encode("Hello world") == ([151646] if bos else []) + plain
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == (151649 if bos else 151648)


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    preset = PRESETS["tiny"].with_overrides(llm_layers=1)
    a = digest(build_demo_checkpoint(tmp_path / "a", preset, seed=3))
    b = digest(build_demo_checkpoint(tmp_path / "b", preset, seed=3))
    c = digest(build_demo_checkpoint(tmp_path / "c", preset, seed=4))
    assert a == b
    assert a["tokenizer.json"] == c["tokenizer.json"]
    assert any(a[k] != c[k] for k in a if k.endswith(".safetensors"))


def test_weights_have_outlier_channels(tiny_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    norm = ckpt.read_tensor("language_model.model.layers.0.input_layernorm.weight").float()
    assert norm.abs().max() > 4 * norm.abs().median()  # a few channels far larger than the rest
    down = ckpt.read_tensor("language_model.model.layers.0.mlp.down_proj.weight").float()
    row_norms = down.norm(dim=1)
    assert row_norms.max() > 4 * row_norms.median()
    # heavy tails: far more 4-sigma entries than a Gaussian's 0.006%
    w = ckpt.read_tensor("language_model.model.layers.0.mlp.up_proj.weight").float()
    assert (w.abs() > 4 * w.std()).float().mean() > 1e-3
    assert torch.isfinite(w).all()


def test_logit_scale_scales_the_lm_head_only() -> None:
    """The bench's flatter-output checkpoint: only ``lm_head`` changes, by the factor; 1 changes nothing."""
    head, down = "language_model.lm_head.weight", "language_model.model.layers.0.mlp.down_proj.weight"
    for name, shape in ((head, (64, 32)), (down, (32, 48))):
        plain = make_tensor(name, shape, torch.bfloat16, 0)
        assert torch.equal(make_tensor(name, shape, torch.bfloat16, 0, logit_scale=1.0), plain)
        scaled = make_tensor(name, shape, torch.bfloat16, 0, logit_scale=0.25)
        assert torch.equal(scaled, plain * 0.25 if name == head else plain)  # a power of two: exact in bf16


def test_overrides_and_vision_variants(tmp_path: Path) -> None:
    preset = PRESETS["tiny-rms"].with_overrides(vision_layers=5, llm_layers=2, ps_version="v1")
    ckpt = open_checkpoint(build_demo_checkpoint(tmp_path / "m", preset))
    assert ckpt.config.vision.num_layers == 5 and ckpt.config.llm.num_layers == 2
    assert ckpt.config.ps_version == "v1" and ckpt.config.vision.norm_type == "rms_norm"


def test_slice_preset_has_the_real_widths() -> None:
    s = PRESETS["slice"]
    assert (s.vision.hidden_size, s.vision.num_heads, s.vision.intermediate_size) == (3200, 25, 12800)
    assert (s.llm.hidden_size, s.llm.num_heads, s.llm.num_kv_heads, s.llm.intermediate_size) == (5120, 40, 8, 27648)
    assert s.llm.vocab_size == 152064 and s.vision.num_layers == 2 and s.llm.num_layers == 2


def test_cli_refuses_to_overwrite_and_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo-checkpoint", str(out), "--llm-layers", "1"]) == 0
    before = digest(out)
    assert main(["demo-checkpoint", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary left behind


def test_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    calls = {"n": 0}

    def interrupt(_: object) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_demo_checkpoint(tmp_path / "m", PRESETS["tiny"], on_tensor=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo-checkpoint", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import r1v_quant.write.safetensors_writer as writer

    real = writer.write_shard
    calls = {"n": 0}

    def fill_up(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second shard finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "write_shard", fill_up)
    assert main(["demo-checkpoint", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {tmp_path / 'm'}: disk full while writing output (nothing was kept)"
    assert list(tmp_path.iterdir()) == []
