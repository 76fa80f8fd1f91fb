"""``r1v-quant awq`` on the tiny demo checkpoint: format, compatibility, quality, resume, float16 watch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from peers import require
import torch
from safetensors.torch import load_file

from r1v_quant.calibrate.dataset import default_data_path, load_samples
from r1v_quant.calibrate.prompts import prepare_samples
from r1v_quant.cli.app import main
from r1v_quant.demo import PRESETS, build_demo_checkpoint
from r1v_quant.engine import Engine
from r1v_quant.engine.linear import Linears
from r1v_quant.engine.llm import decoder_layer, rope_for
from r1v_quant.formats.awq_gemm import dequantize, quantize_groups, unpack_gemm
from r1v_quant.pipelines.awq import AWQRunOptions, quantize_model
from r1v_quant.read import open_checkpoint
from r1v_quant.write.atomic import output_digest

OPTS = AWQRunOptions(samples=4, seq_len=320, max_tiles=1)
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def awq_out(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("awq") / "tiny-awq"
    quantize_model(open_checkpoint(tiny_ckpt), out, OPTS)
    return out


def tensors_of(out: Path) -> dict[str, torch.Tensor]:
    t: dict[str, torch.Tensor] = {}
    for f in sorted(out.glob("*.safetensors")):
        t.update(load_file(f))
    return t


def test_output_has_the_autoawq_gemm_layout(awq_out: Path, tiny_ckpt: Path) -> None:
    """Every linear of the language model and of the vision tower packed (the default); exactly the modules
    with float linears named in modules_to_not_convert."""
    cfg = json.loads((awq_out / "config.json").read_text())
    src = json.loads((tiny_ckpt / "config.json").read_text())
    assert cfg["quantization_config"] == {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
                                          "version": "gemm",
                                          "modules_to_not_convert": ["mlp1", "language_model.lm_head"]}
    assert {k: v for k, v in cfg.items() if k not in ("quantization_config", "torch_dtype")} == \
        {k: v for k, v in src.items() if k != "torch_dtype"}
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "preprocessor_config.json",
                 "modeling_skywork_chat.py", "r1v_quant_awq.json"):
        assert (awq_out / name).is_file(), name
    t = tensors_of(awq_out)
    ckpt = open_checkpoint(tiny_ckpt)
    for i in range(3):
        for lin in LINEARS:
            part = "self_attn" if lin[0] in "qkvo" else "mlp"
            base = f"language_model.model.layers.{i}.{part}.{lin}"
            n, k = ckpt.info(base + ".weight").shape
            assert base + ".weight" not in t
            assert t[base + ".qweight"].dtype == torch.int32 and t[base + ".qweight"].shape == (k, n // 8)
            assert t[base + ".qzeros"].dtype == torch.int32 and t[base + ".qzeros"].shape == (k // 128, n // 8)
            assert t[base + ".scales"].dtype == torch.float16 and t[base + ".scales"].shape == (k // 128, n)
            if lin in ("q_proj", "k_proj", "v_proj"):
                assert t[base + ".bias"].dtype == torch.float16
    for i in range(4):
        for lin in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            base = f"vision_model.encoder.layers.{i}.{lin}"
            n, k = ckpt.info(base + ".weight").shape
            assert base + ".weight" not in t and t[base + ".qweight"].shape == (k, n // 8)
            assert t[base + ".bias"].dtype == torch.float16  # the tiny tower has biases everywhere
    floats = [n for n in t if not n.endswith((".qweight", ".qzeros", ".scales"))]
    assert all(t[n].dtype == torch.float16 for n in floats)
    # everything that is not a packed linear's layer is the source tensor in float16
    for n in ("mlp1.1.weight", "vision_model.embeddings.patch_embedding.weight", "language_model.lm_head.weight"):
        assert torch.equal(t[n], ckpt.read_tensor(n).to(torch.float16))


@pytest.mark.slow
def test_vision_fp16_variant_keeps_the_tower_and_names_it(tiny_ckpt: Path, tmp_path: Path) -> None:
    """--vision-fp16: the tower as in the source, listed as not converted; some layers only: just those."""
    out = tmp_path / "fp16-vision"
    quantize_model(open_checkpoint(tiny_ckpt), out, dataclasses.replace(OPTS, samples=2, vision=False))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["modules_to_not_convert"] == ["vision_model", "mlp1", "language_model.lm_head"]
    t = tensors_of(out)
    ckpt = open_checkpoint(tiny_ckpt)
    assert not any(n.startswith("vision_model") and n.endswith(".qweight") for n in t)
    assert torch.equal(t["vision_model.encoder.layers.0.attn.qkv.weight"],
                       ckpt.read_tensor("vision_model.encoder.layers.0.attn.qkv.weight").to(torch.float16))
    out = tmp_path / "two-fp16-layers"
    quantize_model(open_checkpoint(tiny_ckpt), out, dataclasses.replace(OPTS, samples=2, vision_fp16_layers=(0, 3)))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["modules_to_not_convert"] == [
        "vision_model.encoder.layers.0.", "vision_model.encoder.layers.3.", "mlp1", "language_model.lm_head"]
    packed = {n.removesuffix(".qweight") for n in tensors_of(out) if n.endswith(".qweight")}
    assert {int(n.split(".")[3]) for n in packed if n.startswith("vision_model")} == {1, 2}


@pytest.mark.slow
def test_autoawq_unpacker_reproduces_every_packed_linear(awq_out: Path) -> None:
    packing = require("awq.utils.packing_utils")
    t = tensors_of(awq_out)
    names = sorted(n.removesuffix(".qweight") for n in t if n.endswith(".qweight"))
    assert len(names) == 3 * 7 + 4 * 4  # the decoder's linears and the vision tower's
    assert sum(n.startswith("vision_model.") for n in names) == 16
    for base in names:
        theirs = packing.dequantize_gemm(t[base + ".qweight"], t[base + ".qzeros"], t[base + ".scales"], 4, 128)
        q, z, s = unpack_gemm(t[base + ".qweight"], t[base + ".qzeros"], t[base + ".scales"])
        ours = dequantize(q, z, s, 128).T  # AutoAWQ returns [in, out] in float16
        assert torch.equal(theirs, ours.to(torch.float16)), base


def layer0_error(tiny_ckpt: Path, weights: dict[str, torch.Tensor]) -> float:
    """MSE of decoder layer 0's output against the float layer, on held-out eval samples."""
    ckpt = open_checkpoint(tiny_ckpt)
    samples = load_samples(default_data_path("eval"))[:3]
    with torch.no_grad():
        xs = [x[:, :320] for x in Engine(ckpt).embed(prepare_samples(ckpt, samples, 1))]
        ref_w = {k: v.float() for k, v in ckpt.load_unit("llm.layer.0").tensors.items()}
        err = n = 0.0
        for x in xs:
            rope = rope_for(ckpt.config, x.shape[1], x.device, x.dtype)
            ref = decoder_layer(ckpt.config, Linears(ref_w), x, 0, rope)
            got = decoder_layer(ckpt.config, Linears(weights), x, 0, rope)
            err += float((got - ref).pow(2).sum())
            n += ref.numel()
    return err / n


def test_awq_beats_round_to_nearest(awq_out: Path, tiny_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    src = {k: v.float() for k, v in ckpt.load_unit("llm.layer.0").tensors.items()}
    rtn = dict(src)
    for k, v in src.items():
        if v.ndim == 2:
            rtn[k] = dequantize(*quantize_groups(v, 128), 128)
    t = tensors_of(awq_out)
    awq = {}
    for k in src:
        base = k.removesuffix(".weight")
        if base + ".qweight" in t:
            awq[k] = dequantize(*unpack_gemm(t[base + ".qweight"], t[base + ".qzeros"], t[base + ".scales"]), 128)
        else:
            awq[k] = t[k].float()
    e_rtn, e_awq = layer0_error(tiny_ckpt, rtn), layer0_error(tiny_ckpt, awq)
    assert e_awq < 0.8 * e_rtn, (e_awq, e_rtn)


@pytest.mark.slow
@pytest.mark.parametrize("stop_at,left", [("llm.layer.2", 1), ("vision.layer.2", 2 + 3)])
def test_interrupted_run_resumes_to_identical_bytes(stop_at: str, left: int, awq_out: Path, tiny_ckpt: Path,
                                                    tmp_path: Path) -> None:
    """Killed in the language model or in the vision tower: --resume runs only the layers left."""
    out = tmp_path / "awq"

    def stop(kind: str, d: dict) -> None:
        if kind == "layer_start" and d["unit"] == stop_at:
            raise KeyboardInterrupt

    ckpt = open_checkpoint(tiny_ckpt)
    with pytest.raises(KeyboardInterrupt):
        quantize_model(ckpt, out, OPTS, events=stop)
    assert not out.exists()  # nothing that looks complete
    seen: list[str] = []
    quantize_model(ckpt, out, OPTS, resume=True, events=lambda kind, d: seen.append(kind))
    assert "resume" in seen and seen.count("layer_done") == left
    assert output_digest(out) == output_digest(awq_out)  # same bytes as the uninterrupted run
    assert not any(p.name.endswith("awq-work") for p in tmp_path.iterdir())


def test_resume_refuses_other_options(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "awq"
    ckpt = open_checkpoint(tiny_ckpt)

    def stop(kind: str, d: dict) -> None:
        if kind == "layer_start":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize_model(ckpt, out, OPTS, events=stop)
    code = main(["awq", str(tiny_ckpt), "--out", str(out), "--resume", "--samples", "3", "--max-tiles", "1",
                 "--seq-len", "320"])
    assert code == 2 and "another model, data or options" in capsys.readouterr().err


@pytest.mark.slow
def test_float16_overflow_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = build_demo_checkpoint(tmp_path / "hot", PRESETS["tiny"].with_overrides(llm_layers=1), outlier_scale=60)
    code = main(["awq", str(model), "--out", str(tmp_path / "out"), "--samples", "2", "--max-tiles", "1",
                 "--seq-len", "256", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out)
    assert summary["max_abs_activation"] > summary["fp16_limit"] and summary["fp16_warnings"]
    assert "float16 limit 65504" in captured.err


def test_group_size_must_divide_the_widths(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["awq", str(tiny_ckpt), "--out", str(tmp_path / "o"), "--group-size", "96"])
    assert code == 2 and "not a multiple of --group-size 96" in capsys.readouterr().err
