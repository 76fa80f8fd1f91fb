"""AWQ's pieces tested directly: folding is exact, every scaling group runs, the searches' options
(propagation, bfloat16, chunking) run and agree, calibration holds image tokens."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from r1v_quant.calibrate.capture import LayerProgram
from r1v_quant.calibrate.stats import TokenSubsample
from r1v_quant.demo import PRESETS, build_demo_checkpoint
from r1v_quant.engine.linear import Linears
from r1v_quant.pipelines.awq import AWQRunOptions, quantize_model
from r1v_quant.quantize.awq import SCHEMES, AWQOptions, LayerQuantizer
from r1v_quant.read import LLM, VISION, open_checkpoint


def layer_output(prog: LayerProgram, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    lin = Linears(w)
    ls1, ls2 = prog.residual_scales(lin)
    x = x + ls1 * prog.attention(lin, prog.norm(lin, 0, x))
    return x + ls2 * prog.mlp(lin, prog.norm(lin, 1, x))


@pytest.mark.parametrize("fixture,stack", [("tiny_ckpt", LLM), ("tiny_ckpt", VISION), ("tiny_rms_ckpt", VISION)])
def test_folding_scales_without_quantizing_leaves_every_output_unchanged(fixture: str, stack: str,
                                                                         request: pytest.FixtureRequest) -> None:
    """Every scaling group of the scheme, with random scales folded in: the layer computes the same
    function (float64, so what is checked is the algebra: LayerNorm biases, qkv's value rows, ...)."""
    ckpt = open_checkpoint(request.getfixturevalue(fixture))
    prog = LayerProgram(ckpt.config, stack, 1)
    w = {k: v.double() for k, v in ckpt.load_unit(f"{stack}.layer.1").tensors.items()}
    gen = torch.Generator().manual_seed(0)
    width = ckpt.config.llm.hidden_size if stack == LLM else ckpt.config.vision.hidden_size
    x = torch.randn(2, 40, width, generator=gen, dtype=torch.float64) * 3
    ref = layer_output(prog, w, x)
    lq = LayerQuantizer(prog, dict(w), AWQOptions(group_size=32))
    groups = [g.name for g in lq.groups]
    assert groups == [g.name for g in SCHEMES[stack].groups if not (stack == LLM and g.name == "vo")]  # tiny: GQA
    for g in lq.groups:
        k = lq.w(g.linears[0]).shape[1]
        lq.scales[g.name] = torch.rand(k, generator=gen, dtype=torch.float64) * 4 + 0.25
    lq.fold()
    assert any(not torch.equal(lq.t[n], w[n]) for n in w)  # something did change
    got = layer_output(prog, lq.t, x)
    assert (got - ref).abs().max() / ref.abs().max() < 1e-5


@pytest.fixture(scope="module")
def mha_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny with as many KV heads as heads (no GQA), one decoder layer: v_proj -> o_proj can be folded."""
    p = PRESETS["tiny"]
    preset = dataclasses.replace(p, llm=dataclasses.replace(p.llm, num_kv_heads=p.llm.num_heads, num_layers=1))
    return build_demo_checkpoint(tmp_path_factory.mktemp("mha") / "mha", preset)


OPTS = AWQRunOptions(samples=3, seq_len=256, max_tiles=1)


@pytest.mark.slow
def test_v_proj_to_o_proj_group_runs_without_gqa(mha_ckpt: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    s = quantize_model(open_checkpoint(mha_ckpt), tmp_path / "mha", OPTS)
    (report,) = [r for r in s["per_layer"] if r["stack"] == LLM]
    assert report["skipped"] == [] and set(report["ratios"]) == {"attn", "vo", "mlp", "down"}
    s = quantize_model(open_checkpoint(tiny_ckpt), tmp_path / "gqa", dataclasses.replace(OPTS, samples=2))
    llm = [r for r in s["per_layer"] if r["stack"] == LLM]
    assert llm and all(r["skipped"] == ["vo"] and "vo" not in r["ratios"] for r in llm)


def test_calibration_holds_image_tokens(mha_ckpt: Path, tmp_path: Path) -> None:
    s = quantize_model(open_checkpoint(mha_ckpt), tmp_path / "o", OPTS)
    c = s["calibration"]
    assert c["image_samples"] >= 1 and c["image_tokens"] > 0 and c["tokens"] > c["image_tokens"]
    assert c["tiles"] >= c["image_samples"]


def test_loss_vs_rtn_is_against_plain_round_to_nearest(mha_ckpt: Path) -> None:
    """Without duo scaling the grid's first ratio (s = x^0 = 1) is plain round-to-nearest, so the best
    candidate can only be as good or better: the report's figure must then be <= 1."""
    ckpt = open_checkpoint(mha_ckpt)
    prog = LayerProgram(ckpt.config, LLM, 0)
    w = {k: v.float() for k, v in ckpt.load_unit("llm.layer.0").tensors.items()}
    gen = torch.Generator().manual_seed(1)
    states = [torch.randn(1, 96, ckpt.config.llm.hidden_size, generator=gen) for _ in range(3)]
    lq = LayerQuantizer(prog, w, AWQOptions(duo_scaling=False))
    lq.observe(states)
    lq.search(states, lambda step: None)
    assert set(lq.report.loss_vs_rtn) == {"attn", "vo", "mlp", "down"}
    assert all(0 < v <= 1.0 for v in lq.report.loss_vs_rtn.values()), lq.report.loss_vs_rtn


@pytest.mark.slow
def test_chunk_size_bounds_memory_not_the_result(mha_ckpt: Path, tmp_path: Path) -> None:
    big = quantize_model(open_checkpoint(mha_ckpt), tmp_path / "big", dataclasses.replace(OPTS, chunk_tokens=100_000))
    small = quantize_model(open_checkpoint(mha_ckpt), tmp_path / "small", dataclasses.replace(OPTS, chunk_tokens=64))
    assert small["per_layer"][0]["ratios"] == big["per_layer"][0]["ratios"]
    for k, v in big["per_layer"][0]["loss_vs_rtn"].items():
        assert math.isclose(small["per_layer"][0]["loss_vs_rtn"][k], v, rel_tol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("changes", [{"propagate": "quantized"}, {"dtype": "bfloat16"}])
def test_propagate_quantized_and_bfloat16_run(changes: dict, mha_ckpt: Path, tmp_path: Path) -> None:
    from r1v_quant.read.artifact import open_artifact

    s = quantize_model(open_checkpoint(mha_ckpt), tmp_path / "o", dataclasses.replace(OPTS, **changes))
    assert s["options"][next(iter(changes))] == next(iter(changes.values()))
    layer = open_artifact(tmp_path / "o").load_unit("llm.layer.0").tensors  # unpacks, refuses NaN/Inf
    src = open_checkpoint(mha_ckpt).load_unit("llm.layer.0").tensors
    assert set(layer) == set(src)


def test_token_subsample_takes_every_stride_th_token_across_states() -> None:
    states = [torch.arange(n * 2.0).view(1, n, 2) for n in (7, 5, 11)]
    flat = torch.cat([s.reshape(-1, 2) for s in states])
    sub = TokenSubsample(total_tokens=len(flat), size=4)
    first = 0
    for s in states:
        n = s.shape[1]
        sub.add("x", s, sub.take(first, n))
        first += n
    assert torch.equal(sub.get("x"), flat[:: len(flat) // 4][:4])
