"""Reference logits: contents, exactness against the engine's full logits, KL bound, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformed import TransformedSource

from r1v_quant.calibrate.dataset import load_samples, write_eval_subset
from r1v_quant.calibrate.prompts import prepare_samples
from r1v_quant.cli.app import main
from r1v_quant.engine import Engine
from r1v_quant.pipelines.reference import ReferenceOptions, compute_reference
from r1v_quant.read import Unit, open_checkpoint
from r1v_quant.validate.metrics import kl_estimate, kl_full
from r1v_quant.validate.reference_file import (load_reference, save_reference, scored_positions)


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three image and two text samples of the shipped eval set, image paths made absolute."""
    return write_eval_subset(tmp_path_factory.mktemp("data") / "small.jsonl", 3, 2)


@pytest.fixture(scope="module")
def reference(tiny_ckpt: Path, small_eval: Path, tmp_path_factory: pytest.TempPathFactory):
    ckpt = open_checkpoint(tiny_ckpt)
    ref = compute_reference(ckpt, load_samples(small_eval), small_eval, ReferenceOptions(max_tiles=2))  # default top_k: 64
    path = tmp_path_factory.mktemp("ref") / "tiny.r1vref"
    save_reference(path, ref)
    return path


def full_logprobs(tiny_ckpt: Path, small_eval: Path, transform=None) -> list[torch.Tensor]:
    """Full log-softmax at every scored position, per sample, from the engine."""
    ckpt = open_checkpoint(tiny_ckpt)
    prepared = prepare_samples(ckpt, load_samples(small_eval), max_tiles=2)
    positions = [scored_positions(p) for p in prepared]
    out: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(prepared))}
    Engine(TransformedSource(ckpt, transform)).run(
        prepared, lambda i, pos, logits: out[i].append(torch.log_softmax(logits.float(), -1)), positions)
    return [torch.cat(out[i]) for i in range(len(prepared))]


@pytest.fixture(scope="module")
def ref_full(tiny_ckpt: Path, small_eval: Path) -> torch.Tensor:
    return torch.cat(full_logprobs(tiny_ckpt, small_eval))


def test_reference_contents(reference: Path, ref_full: torch.Tensor) -> None:
    ref = load_reference(reference)
    meta = ref.meta
    assert meta["format"] == "r1vref/1" and meta["tool"].startswith("r1v-quant ")
    assert len(meta["model"]["fingerprint"]) == 64 and meta["data"]["file"] == "small.jsonl"
    assert [s["has_image"] for s in meta["samples"]] == [True, True, True, False, False]
    t = ref.tensors
    n = meta["counts"]["positions"]
    assert t["topk.ids"].shape == (n, 64) and t["tail.ids"].shape == (n, 64) and t["pos.lse"].shape == (n,)
    assert (t["topk.logprobs"][:, :-1] >= t["topk.logprobs"][:, 1:]).all()  # sorted, most likely first
    assert 0 < int(t["pos.is_answer"].sum()) < n
    # exact against the engine's full logits
    full = ref_full
    assert torch.equal(full.gather(-1, t["topk.ids"].long()), t["topk.logprobs"])
    assert torch.equal(full.gather(-1, t["tail.ids"].long()), t["tail.logprobs"])
    assert not (t["tail.ids"][:, :, None] == t["topk.ids"][:, None, :]).any()  # drawn outside the top k
    assert torch.equal(full.gather(-1, t["pos.target"].long()[:, None])[:, 0], t["pos.target_logprob"])
    # targets are the next tokens of the stored sequences, never image-slot tokens
    for i in range(meta["counts"]["samples"]):
        seq = ref.sequence(i)
        rows = t["pos.sample"] == i
        assert torch.equal(seq[t["pos.index"][rows].long() + 1], t["pos.target"][rows].long())
    assert len(ref.sequence(0)) > 256 * 3  # image samples carry their image slots


def test_size_per_position_is_documented(reference: Path) -> None:
    ref = load_reference(reference)
    c = ref.meta["counts"]
    payload = c["positions"] * ref.bytes_per_position() + c["tokens"] * 4 + (c["samples"] + 1) * 8
    assert payload < reference.stat().st_size < payload + 64 * 1024


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.005, 0.05, 0.3])
def test_kl_from_the_reference_is_within_one_percent_of_exact(reference: Path, tiny_ckpt: Path, small_eval: Path,
                                                              ref_full: torch.Tensor, noise: float) -> None:
    """Perturb the decoder weights (small to large) and compare KL from the file with KL from full logits."""

    def perturb(unit: Unit) -> Unit:
        if unit.name.startswith("llm.layer."):
            g = torch.Generator().manual_seed(unit.layer or 0)
            for name, w in unit.tensors.items():
                if w.ndim == 2:
                    unit.tensors[name] = (w.float() + torch.randn(w.shape, generator=g) * w.float().std() * noise
                                          ).to(w.dtype)
        return unit

    t = load_reference(reference).tensors
    q_full = torch.cat(full_logprobs(tiny_ckpt, small_eval, transform=perturb))
    exact = kl_full(ref_full, q_full)
    approx = kl_estimate(t["topk.ids"], t["topk.logprobs"], t["tail.ids"], t["tail.logprobs"], t["pos.tail_mass"],
                         q_full)
    assert exact.mean() > 0.1  # the perturbation is visible
    rel = abs(approx.mean() - exact.mean()) / exact.mean()
    assert rel < 0.01, f"relative error of mean KL: {rel:.4%}"
    same = kl_estimate(t["topk.ids"], t["topk.logprobs"], t["tail.ids"], t["tail.logprobs"], t["pos.tail_mass"],
                       ref_full)
    assert same.abs().max() < 1e-6
    tail_mass = ref_full.double().exp().scatter(-1, t["topk.ids"].long(), 0.0).sum(-1)
    assert torch.allclose(t["pos.tail_mass"].double(), tail_mass, rtol=1e-5, atol=1e-12)


@pytest.mark.slow
def test_cli_reference_json_and_determinism(tiny_ckpt: Path, small_eval: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    args = ["reference", str(tiny_ckpt), "--data", str(small_eval), "--max-tiles", "1", "--top-k", "8", "--json"]
    assert main([*args, "--out", str(tmp_path / "a.r1vref")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 5 and summary["top_k"] == 8 and summary["bytes"] > 0
    assert main([*args, "--out", str(tmp_path / "b.r1vref"), "--batch-size", "2"]) == 0
    capsys.readouterr()
    a, b = ((tmp_path / f"{x}.r1vref").read_bytes() for x in "ab")
    ra, rb = load_reference(tmp_path / "a.r1vref"), load_reference(tmp_path / "b.r1vref")
    assert all(torch.equal(ra.tensors[k], rb.tensors[k]) for k in ra.tensors)  # batching changes nothing
    assert main([*args, "--out", str(tmp_path / "a2.r1vref")]) == 0
    assert hashlib.sha256(a).digest() == hashlib.sha256((tmp_path / "a2.r1vref").read_bytes()).digest()
    assert main([*args, "--out", str(tmp_path / "a.r1vref")]) == 2  # exists
    assert "already exists" in capsys.readouterr().err


def test_cli_reference_bad_data_names_the_line(tiny_ckpt: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": 3}\n')
    assert main(["reference", str(tiny_ckpt), "--data", str(data), "--out", str(tmp_path / "r.r1vref")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.jsonl:2" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.r1vref").exists()


def test_not_a_reference_file(tmp_path: Path) -> None:
    from r1v_quant.errors import InputError

    with pytest.raises(InputError, match="reference file not found"):
        load_reference(tmp_path / "none.r1vref")
