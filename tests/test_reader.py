"""The checkpoint reader: config parsing, classification, unit-by-unit walk, dtypes."""

from __future__ import annotations

import json
import shutil
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from r1v_quant.demo import PRESETS, build_demo_checkpoint
from r1v_quant.read import LLM, PROJECTOR, VISION, classify, load_config, open_checkpoint


def test_config_is_parsed_into_typed_objects(tiny_ckpt: Path) -> None:
    cfg = load_config(tiny_ckpt)
    assert cfg.architecture == "SkyworkR1VChatModel" and cfg.model_type == "skywork_chat"
    assert (cfg.llm.hidden_size, cfg.llm.num_layers, cfg.llm.num_heads, cfg.llm.num_kv_heads) == (256, 3, 4, 2)
    assert cfg.llm.head_dim == 64 and cfg.llm.intermediate_size == 640 and cfg.llm.vocab_size == 152064
    assert cfg.llm.rope_theta == 1e6 and cfg.llm.rms_norm_eps == 1e-5 and not cfg.llm.tie_word_embeddings
    v = cfg.vision
    assert (v.hidden_size, v.num_layers, v.num_heads, v.norm_type, v.qkv_bias) == (128, 4, 4, "layer_norm", True)
    assert v.num_patches == 1024 and cfg.image_size == 448 and cfg.shuffle_scale == 2
    assert cfg.projector_in == 512 and cfg.tokens_per_tile == 256  # 128 x the 2x2 pixel shuffle
    assert cfg.ps_version == "v2" and cfg.use_thumbnail and cfg.max_dynamic_patch == 12


def test_internvl_text_config_variant(tiny_ckpt: Path, tmp_path: Path) -> None:
    """Older copies say InternVLChatModel / internvl_chat; converted ones use text_config."""
    raw = json.loads((tiny_ckpt / "config.json").read_text())
    raw["architectures"] = ["InternVLChatModel"]
    raw["model_type"] = "internvl_chat"
    raw["text_config"] = raw.pop("llm_config")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    cfg = load_config(tmp_path)
    assert cfg.architecture == "InternVLChatModel" and cfg.llm_key == "text_config" and cfg.llm.num_layers == 3


def test_every_tensor_is_classified(tiny_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    comps = {classify(n).component for n in ckpt.tensor_names}
    assert comps == {VISION, PROJECTOR, LLM}
    assert classify("vision_model.encoder.layers.7.attn.qkv.weight").name == "vision.layer.7"
    assert classify("language_model.model.layers.12.mlp.up_proj.weight").name == "llm.layer.12"
    assert classify("language_model.lm_head.weight").name == "llm.head"
    assert classify("mlp1.3.bias").component == PROJECTOR
    assert classify("something.else").component == "other"


def test_walk_yields_one_unit_at_a_time_with_exact_data(tiny_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    # independent reference: the safetensors library's own loader
    reference: dict[str, torch.Tensor] = {}
    for shard in sorted(tiny_ckpt.glob("model-*.safetensors")):
        reference.update(load_file(shard))
    seen: list[str] = []
    units = list(ckpt.unit_names())
    assert units[0] == "vision.embeddings" and units[-1] == "llm.head"
    assert units.index("projector") < units.index("llm.embed") < units.index("llm.layer.0")
    for unit in ckpt.iter_units():
        assert unit.nbytes == ckpt.unit_bytes(unit.name)
        assert {classify(n).name for n in unit.tensors} == {unit.name}
        for name, t in unit.tensors.items():
            assert t.dtype == torch.bfloat16 and torch.equal(t, reference[name]), name
        seen += unit.tensors
    assert sorted(seen) == sorted(reference)


def test_component_filter(tiny_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    assert [u.name for u in ckpt.iter_units([PROJECTOR])] == ["projector"]
    assert ckpt.unit_names([LLM])[:2] == ["llm.embed", "llm.layer.0"]


@pytest.mark.parametrize("dtype,torch_dtype", [("f16", torch.float16), ("f32", torch.float32)])
def test_f16_and_f32_sources(tmp_path: Path, dtype: str, torch_dtype: torch.dtype) -> None:
    preset = PRESETS["tiny"].with_overrides(llm_layers=1, dtype=dtype)
    ckpt = open_checkpoint(build_demo_checkpoint(tmp_path / "m", preset))
    unit = ckpt.load_unit("llm.layer.0")
    assert all(t.dtype == torch_dtype for t in unit.tensors.values())


def test_a_unit_is_placed_tensor_by_tensor_as_it_is_read(tiny_ckpt: Path) -> None:
    """With ``place`` (the engine's: to the device, in its dtype), each tensor moves as soon as it is read
    and the tensor as read is freed before the next one is read: on a GPU the host holds one tensor of
    a unit, not the unit (the plan counts one)."""
    ckpt = open_checkpoint(tiny_ckpt)
    plain = ckpt.load_unit("llm.layer.0").tensors
    as_read: list[weakref.ref] = []

    def place(t: torch.Tensor) -> torch.Tensor:
        assert all(r() is None for r in as_read), "the previous tensor as read is still held"
        as_read.append(weakref.ref(t))
        return t.to(torch.float64)

    placed = ckpt.load_unit("llm.layer.0", place).tensors
    assert len(as_read) == len(plain) == len(placed) > 5
    assert all(placed[k].dtype == torch.float64 and torch.equal(placed[k], plain[k].double()) for k in plain)


def test_single_file_checkpoint(tiny_ckpt: Path, tmp_path: Path) -> None:
    """A checkpoint with one ``model.safetensors`` and no index is read the same way."""
    for f in tiny_ckpt.iterdir():
        if not f.name.startswith("model"):
            shutil.copy(f, tmp_path / f.name)
    tensors: dict[str, torch.Tensor] = {}
    for shard in tiny_ckpt.glob("model-*.safetensors"):
        tensors.update(load_file(shard))
    save_file(tensors, tmp_path / "model.safetensors")
    ckpt = open_checkpoint(tmp_path)
    assert list(ckpt.shards) == ["model.safetensors"]
    assert torch.equal(ckpt.read_tensor("mlp1.1.weight"), tensors["mlp1.1.weight"])


def test_rms_variant_has_qk_norm_and_no_biases(tiny_rms_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_rms_ckpt)
    names = set(ckpt.units["vision.layer.0"])
    p = "vision_model.encoder.layers.0."
    assert {p + "attn.q_norm.weight", p + "attn.k_norm.weight", p + "ls1", p + "ls2"} <= names
    assert p + "attn.qkv.bias" not in names and p + "norm1.bias" not in names
    assert ckpt.config.vision.norm_type == "rms_norm" and ckpt.config.vision.qk_normalization


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_all_finite_finds_any_nan_or_infinity(dtype: torch.dtype) -> None:
    """``all_finite`` (min and max, no mask) is the check every weight passes through: it must see
    one bad value anywhere, in strided views too, and accept finite extremes."""
    from r1v_quant.read.finite import all_finite

    g = torch.Generator().manual_seed(3)
    for n in (1, 5, 4097, 300_000):
        x = (torch.randn(n, generator=g) * 0.02).to(dtype)
        assert all_finite(x)
        for bad in (float("nan"), float("inf"), float("-inf")):
            for pos in sorted({0, n // 3, n - 1}):
                y = x.clone()
                y[pos] = bad
                assert not all_finite(y) and not all_finite(y.reshape(1, -1)[:, pos:])
    big = torch.tensor([torch.finfo(dtype).max, -torch.finfo(dtype).max, 0.0], dtype=dtype)
    assert all_finite(big) and all_finite(torch.empty(0, dtype=dtype)) and all_finite(torch.arange(3))
    m = torch.zeros(64, 64, dtype=dtype)
    m[5, 7] = float("nan")
    assert not all_finite(m.t()) and all_finite(m[:, ::8][:, 1:])  # column 7 is not in the second view
