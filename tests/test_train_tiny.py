"""bench/train_tiny.py: the trained tiny checkpoint that bench_imatrix.py --model measures.

It trains through its own autograd forward; these tests hold that forward to the engine's (the model
trained is the model measured), and its data and output to what it promises."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from r1v_quant.calibrate.dataset import load_samples
from r1v_quant.calibrate.prompts import prepare_samples
from r1v_quant.demo import PRESETS, build_demo_checkpoint
from r1v_quant.engine import Engine, EngineOptions
from r1v_quant.engine.linear import Linears
from r1v_quant.read import open_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def modules():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(REPO))
        mp.syspath_prepend(str(REPO / "bench"))
        yield importlib.import_module("tools.calibgen"), importlib.import_module("train_tiny")
    sys.modules.pop("train_tiny", None)


def test_the_training_split_shares_nothing_with_the_shipped_sets_and_is_reproducible(modules, tmp_path):
    calibgen, _ = modules
    a = calibgen.generate_split(tmp_path / "a", "train", 8, 3)
    b = calibgen.generate_split(tmp_path / "b", "train", 8, 3)
    assert a.read_bytes() == b.read_bytes()
    rows = [json.loads(line) for line in a.read_text().splitlines()]
    assert sum(bool(r["images"]) for r in rows) == 8 and len(rows) == 11
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    for r in rows:
        for rel in r["images"]:
            assert digest(tmp_path / "a" / rel) == digest(tmp_path / "b" / rel)
    shipped_images = {digest(p) for p in (REPO / "calib_data" / "images").glob("*.png")}
    # image samples' questions are templates (the image differs); text samples' questions must differ
    text_questions = lambda rows: {r["messages"][0]["content"] for r in rows if not r["images"]}  # noqa: E731
    shipped_questions = text_questions(json.loads(line) for split in ("calib", "eval")
                                       for line in (REPO / "calib_data" / f"{split}.jsonl").read_text().splitlines())
    assert not {digest(p) for p in (tmp_path / "a" / "images").glob("*.png")} & shipped_images
    assert len(text_questions(rows)) == 3 and not text_questions(rows) & shipped_questions
    assert all(r["id"].startswith("train-") for r in rows)


def test_the_training_forward_is_the_engines(modules, tmp_path):
    """Same loss as cross-entropy on the engine's logits, at the positions whose next token is text; the
    gradient reaches the vision tower through the image slots."""
    calibgen, train_tiny = modules
    ckpt = open_checkpoint(build_demo_checkpoint(tmp_path / "m", PRESETS["tiny"]))
    data = calibgen.generate_split(tmp_path / "d", "train", 1, 1)
    samples = prepare_samples(ckpt, load_samples(data), max_tiles=2)
    assert [s.has_image for s in samples] == [True, False]
    params = {n: ckpt.read_tensor(n).float().requires_grad_() for n in ckpt.tensor_names}
    positions = [torch.nonzero(s.predicts_text()[:-1]).flatten() for s in samples]
    chunks: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    Engine(ckpt, EngineOptions()).run(samples, lambda i, pos, out: chunks[i].append(out), positions)
    for i, s in enumerate(samples):
        logits = torch.cat(chunks[i])
        assert len(logits) == len(positions[i])
        assert len(positions[i]) == len(s.input_ids) - 1 - int(s.image_mask.sum())  # image slots not scored
        expected = F.cross_entropy(logits, s.input_ids[positions[i] + 1])
        loss = train_tiny.forward_loss(ckpt.config, Linears(params), s)
        torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-4)
        for t in params.values():
            t.grad = None
        loss.backward()
        patch = params["vision_model.embeddings.patch_embedding.weight"].grad
        assert (patch is not None and patch.abs().sum() > 0) == s.has_image


def test_given_weights_are_written_as_the_checkpoint(tmp_path):
    ckpt = open_checkpoint(build_demo_checkpoint(tmp_path / "a", PRESETS["tiny"]))
    changed = {n: ckpt.read_tensor(n).float() * 2 for n in ckpt.tensor_names}
    out = build_demo_checkpoint(tmp_path / "b", PRESETS["tiny"], weights=changed.__getitem__,
                                demo_info={"trained": {"steps": 1}})
    again = open_checkpoint(out)
    for n in ckpt.tensor_names:
        assert torch.equal(again.read_tensor(n), changed[n].to(torch.bfloat16)), n
    assert json.loads((out / "config.json").read_text())["r1v_quant_demo"] == {"preset": "tiny", "seed": 0,
                                                                                 "trained": {"steps": 1}}


def test_training_twice_gives_the_same_bits(modules, tmp_path):
    """Two runs from the same weights and samples end bit for bit alike (the embedding's gradient, summed
    over repeated tokens on two threads, differed in its last bits before training ran deterministic),
    and leave the process's deterministic-algorithms flag as it was."""
    calibgen, train_tiny = modules
    ckpt = open_checkpoint(build_demo_checkpoint(tmp_path / "m", PRESETS["tiny"]))
    samples = prepare_samples(ckpt, load_samples(calibgen.generate_split(tmp_path / "d", "train", 1, 1)), max_tiles=2)
    start = {n: ckpt.read_tensor(n).float() for n in ckpt.tensor_names}
    flag = torch.are_deterministic_algorithms_enabled()
    runs = []
    for _ in range(2):
        params = {n: t.clone().requires_grad_() for n, t in start.items()}
        train_tiny.train_steps(ckpt.config, params, samples, epochs=1, batch=1, lr=2e-3, seed=0, t0=0.0)
        runs.append(params)
    assert torch.are_deterministic_algorithms_enabled() == flag
    embed = "language_model.model.embed_tokens.weight"
    assert not torch.equal(runs[0][embed].detach(), start[embed])  # it trained
    for n in start:
        assert torch.equal(runs[0][n].detach(), runs[1][n].detach()), n
