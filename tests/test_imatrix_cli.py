"""``r1v-quant imatrix`` and ``r1v-quant gguf --imatrix FILE|auto|none`` as users type them.

The bytes these give are proven against llama.cpp in test_gguf_export (the importance-weighted
encoders, ``llama_model_quantize`` given the same matrix); here: the commands, their options, what
they write and what they refuse."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from gguf import GGUFReader

from r1v_quant.calibrate.dataset import default_data_path, load_samples
from r1v_quant.calibrate.imatrix import ImatrixCollector
from r1v_quant.calibrate.prompts import prepare_samples
from r1v_quant.cli.app import main
from r1v_quant.read import open_checkpoint
from r1v_quant.read.imatrix_file import load_imatrix

CALIB = ["--samples", "4", "--seq-len", "128", "--max-tiles", "1"]


@pytest.fixture(scope="module")
def matrices(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """The multimodal and the text-only matrix of the tiny checkpoint, with each command's --json."""
    folder = tmp_path_factory.mktemp("imatrix-cli")
    made = {}
    for kind, extra in (("multimodal", []), ("text", ["--text-only"])):
        path = folder / f"{kind}.imatrix.gguf"
        buf = io.StringIO()
        with redirect_stdout(buf):  # the --json summary
            rc = main(["imatrix", str(tiny_ckpt), "--out", str(path), *CALIB, *extra, "--json"])
        assert rc == 0
        made[kind] = (path, json.loads(buf.getvalue()))
    return made


def test_the_multimodal_matrix_covers_the_llm_the_tower_and_the_projector(matrices) -> None:
    path, summary = matrices["multimodal"]
    m = load_imatrix(path)
    assert summary["image_samples"] > 0 and summary["samples"] == 4 and summary["tokens"] > 0
    assert summary["entries"] == len(m.sums) and summary["vision_entries"] > 0
    names = set(m.sums)
    for expected in ("blk.0.attn_q.weight", "blk.2.ffn_down.weight", "output.weight",
                     "v.blk.0.attn_q.weight", "v.blk.3.ffn_down.weight", "mm.model.mlp.3.weight"):
        assert expected in names, expected
    assert all(m.counts[n] > 0 and (m.sums[n] >= 0).all() for n in names)
    assert "images and text" in m.datasets[0]


def test_the_lm_head_is_summed_where_its_logits_are_read(matrices, tiny_ckpt: Path) -> None:
    """output.weight counts only the positions whose next token is text; every other entry of the
    language model counts every token, and a text-only run has no position to leave out."""
    prepared = prepare_samples(open_checkpoint(tiny_ckpt), load_samples(default_data_path("calib"))[:4], 1)
    read = sum(int(p.predicts_text()[:128].sum()) for p in prepared)
    m, summary = load_imatrix(matrices["multimodal"][0]), matrices["multimodal"][1]
    assert m.counts["blk.0.attn_q.weight"] == summary["tokens"] > m.counts["output.weight"] == read
    text = load_imatrix(matrices["text"][0])
    assert text.counts["output.weight"] == text.counts["blk.0.attn_q.weight"] == matrices["text"][1]["tokens"]


def test_text_only_sees_no_image(matrices) -> None:
    path, summary = matrices["text"]
    m = load_imatrix(path)
    assert summary["image_samples"] == 0 and summary["vision_entries"] == 0
    assert not any(n.startswith(("v.", "mm.")) for n in m.sums) and "blk.0.attn_q.weight" in m.sums
    assert "text only" in m.datasets[0]
    # the same LLM matrices as the multimodal run, measured on other tokens
    multimodal = load_imatrix(matrices["multimodal"][0])
    assert (m.sums["blk.0.attn_q.weight"] != multimodal.sums["blk.0.attn_q.weight"]).any()


@pytest.mark.slow
def test_gguf_imatrix_file_changes_the_rounding_and_is_recorded(matrices, tiny_ckpt: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = matrices["multimodal"]
    files = {}
    for how in ("none", str(path)):
        out = tmp_path / ("plain" if how == "none" else "weighted")
        rc, stdout, err = run_cli(["gguf", str(tiny_ckpt), "--type", "q4_k_m", "--out", str(out), "--imatrix", how,
                               "--no-mmproj", "--json"], capsys)
        assert rc == 0, err
        summary = json.loads(stdout)
        assert summary["imatrix"] == (None if how == "none" else str(path))
        files[how] = Path(summary["files"][0]["path"])
    weighted = GGUFReader(files[str(path)])
    plain = GGUFReader(files["none"])
    assert "quantize.imatrix.file" in weighted.fields and "quantize.imatrix.file" not in plain.fields
    q = "blk.0.attn_q.weight"
    tensor = {r: next(t for t in g.tensors if t.name == q) for r, g in (("w", weighted), ("p", plain))}
    assert tensor["w"].tensor_type == tensor["p"].tensor_type
    assert bytes(tensor["w"].data) != bytes(tensor["p"].data)  # the importance moved the rounding


@pytest.mark.slow
def test_gguf_imatrix_auto_measures_first_and_writes_it_beside(tiny_ckpt: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "auto"
    rc, stdout, err = run_cli(["gguf", str(tiny_ckpt), "--type", "iq4_xs", "--out", str(out), "--imatrix", "auto",
                           "--imatrix-samples", "2", "--name", "Tiny", "--json"], capsys)
    assert rc == 0, err
    summary = json.loads(stdout)
    matrix = out / "Tiny.imatrix.gguf"
    assert summary["imatrix"] == str(matrix) and load_imatrix(matrix).sums
    written = {p.name for p in out.iterdir()}
    assert {"Tiny-IQ4_XS.gguf", "Tiny.imatrix.gguf", "mmproj-Tiny-Q8_0.gguf"} <= written, written
    assert not [n for n in written if ".tmp" in n or n.startswith(".")], written


@pytest.mark.parametrize("bad,problem", [("missing.gguf", "importance matrix not found"),
                                         pytest.param("not-a-matrix", "not 'imatrix'", marks=pytest.mark.slow)])
def test_a_bad_imatrix_is_one_line_and_writes_nothing(bad: str, problem: str, tiny_ckpt: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    if bad == "not-a-matrix":  # a GGUF file, but a model, not a matrix
        rc, stdout, _ = run_cli(["gguf", str(tiny_ckpt), "--type", "q8_0", "--out", str(tmp_path / "m"), "--no-mmproj",
                             "--json"], capsys)
        assert rc == 0
        bad = json.loads(stdout)["files"][0]["path"]
    out = tmp_path / "out"
    rc, _, err = run_cli(["gguf", str(tiny_ckpt), "--type", "q4_k_m", "--out", str(out), "--imatrix",
                      str(tmp_path / bad)], capsys)
    assert rc == 2 and problem in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir())


def test_balance_weighs_the_image_and_text_samples_alike() -> None:
    """The language model's entries: each group's per-token mean counts the same, stored as sums over all
    tokens seen; the vision tower's are summed as ever, and one group alone gives the plain sums."""
    q, tower = "language_model.model.layers.0.self_attn.q_proj", "vision_model.encoder.layers.0.mlp.fc1"
    image, text = torch.full((1, 30, 4), 2.0), torch.full((1, 10, 4), 1.0)  # squares 4 and 1
    balanced, plain = ImatrixCollector(), ImatrixCollector()
    balanced.balance(["image", "text"], [30, 10])
    for c in (balanced, plain):
        c.hook(tower, torch.ones(3, 5, 8))
        c.hook(q, image)
        c.hook(q, text)
    sums, count = balanced.entries()["blk.0.attn_q.weight"]
    assert count == 40 and torch.allclose(sums / count, torch.full((4,), 2.5))  # (4 + 1) / 2, not 130 / 40
    assert plain.entries()["blk.0.attn_q.weight"][0].tolist() == [130.0] * 4
    assert balanced.entries()["v.blk.0.ffn_up.weight"][1] == 15 and torch.equal(
        balanced.entries()["v.blk.0.ffn_up.weight"][0], plain.entries()["v.blk.0.ffn_up.weight"][0])

    one_group = ImatrixCollector()
    one_group.balance(["text", "text"], [30, 10])
    one_group.hook(q, image)
    one_group.hook(q, text)
    assert torch.equal(one_group.entries()["blk.0.attn_q.weight"][0], plain.entries()["blk.0.attn_q.weight"][0])
    with pytest.raises(AssertionError, match="30 tokens, not 10"):  # a call out of the engine's state order
        one_group.hook(q, text)

    # rows: only the chosen tokens are summed, the state still counted whole (its 30 tokens checked)
    head = ImatrixCollector()
    head.balance(["image", "text"], [30, 10])
    rows = torch.zeros(30, dtype=torch.bool)
    rows[:3] = True
    head.hook("language_model.lm_head", torch.cat([torch.full((1, 3, 4), 2.0), torch.full((1, 27, 4), 9.0)], 1),
              rows=rows)
    head.hook("language_model.lm_head", text, rows=torch.ones(10, dtype=torch.bool))
    sums, count = head.entries()["output.weight"]
    assert count == 13 and torch.allclose(sums / count, torch.full((4,), 2.5))  # the 9s left out


def test_balance_tokens_is_llama_imatrix_summing(matrices, tiny_ckpt: Path, tmp_path: Path) -> None:
    path = tmp_path / "tokens.imatrix.gguf"
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["imatrix", str(tiny_ckpt), "--out", str(path), *CALIB, "--balance", "tokens", "--json"]) == 0
    assert json.loads(buf.getvalue())["balance"] == "tokens"
    tokens, prompts = load_imatrix(path), load_imatrix(matrices["multimodal"][0])
    assert "tokens alike" in tokens.datasets[0] and "prompts alike" in prompts.datasets[0]
    assert tokens.counts == prompts.counts
    llm, tower = "blk.0.ffn_down.weight", "v.blk.0.attn_q.weight"
    assert not np.allclose(tokens.sums[llm], prompts.sums[llm], rtol=1e-3)
    assert (tokens.sums[tower] == prompts.sums[tower]).all()  # the tower sees only tiles: no groups
