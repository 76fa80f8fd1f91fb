"""``r1v-quant release`` / ``verify`` on the tiny demo checkpoint: manifest and cards, reproducible bytes,
resume after a kill, a failed gate, the disk preflight, CI output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llama_harness import read_gguf

from r1v_quant.calibrate.dataset import data_hash, default_data_path, load_samples
from r1v_quant.cli.app import main
from r1v_quant.formats.gguf_names import sidecar_path
from r1v_quant.pipelines.release import plan as release_plan
from r1v_quant.pipelines.release.eval_data import select, write_eval_data
from r1v_quant.pipelines.release.manifest import sha256_file
from r1v_quant.read import open_checkpoint
from r1v_quant.read.fingerprint import fingerprint
from r1v_quant.validate.reference_file import load_reference

# Small everything: 2 eval samples (1 image, 1 text), 4 AWQ calibration samples of 256 tokens, 1 tile.
SMALL = ["--eval-samples", "2", "--max-tiles", "1", "--awq-samples", "4", "--awq-seq-len", "256",
         "--awq-max-tiles", "1"]
# The random tiny model measures huge KLs (AWQ ~5); these gates let every artifact pass.
LOOSE = ["--max-kl", "100", "--min-top1", "0", "--max-ppl-ratio", "1000"]
FULL = ["--awq", "--gguf", "q8_0,q4_k_m", *SMALL, *LOOSE]


def release_cmd(model: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "r1v_quant", "release", str(model), "--out", str(out), *args]


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def release_a(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One full release (AWQ + two GGUF types) run as CI runs it: a subprocess whose stdout is a pipe."""
    out = tmp_path_factory.mktemp("rel") / "dist"
    t0 = time.monotonic()
    proc = subprocess.run(release_cmd(tiny_ckpt, out, *FULL, "--json"), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=1800)
    print(f"full release: {time.monotonic() - t0:.0f} s")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


@pytest.mark.slow
def test_manifest_lists_every_file_with_its_hash_and_the_provenance(release_a, tiny_ckpt: Path) -> None:
    out, proc = release_a
    m = json.loads((out / "manifest.json").read_text())
    assert m["schema"] == "r1v-quant.release/1" and m["passed"] is True
    assert not (out / ".release").exists()  # the state goes once the manifest is written
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == set(m["files"]) | {"manifest.json"}
    for rel, f in m["files"].items():
        assert f == {"bytes": (out / rel).stat().st_size, "sha256": sha256_file(out / rel)}, rel
    assert sorted(m["artifacts"]) == ["awq", "gguf-q4_k_m", "gguf-q8_0"]
    for a in m["artifacts"].values():
        assert a["status"] == "passed" and set(a["files"]) <= set(m["files"])
        assert {"image", "text"} <= set(a["validation"]["groups"]) and a["validation"]["checks"]
        assert f"{a['dir']}/README.md" in a["files"]
    q8, q4 = m["artifacts"]["gguf-q8_0"], m["artifacts"]["gguf-q4_k_m"]
    assert q8["mmproj"] == q4["mmproj"] == "tiny-GGUF/mmproj-tiny-Q8_0.gguf"  # one mmproj, paired with both
    assert (q8["llm"], q4["llm"]) == ("tiny-GGUF/tiny-Q8_0.gguf", "tiny-GGUF/tiny-Q4_K_M.gguf")
    # the importance matrix both GGUF files were quantized with (auto: measured on the calibration set) ships too
    assert "tiny-GGUF/tiny.imatrix.gguf" in q8["files"] and "tiny-GGUF/tiny.imatrix.gguf" in q4["files"]
    assert m["options"]["imatrix"] == "auto"
    assert read_gguf(out / "tiny-GGUF" / "tiny-Q4_K_M.gguf").metadata["quantize.imatrix.file"][1] == "tiny.imatrix.gguf"
    assert m["artifacts"]["awq"]["weights"] and all(w.endswith(".safetensors") for w in m["artifacts"]["awq"]["weights"])
    assert m["source"]["fingerprint"] == fingerprint(open_checkpoint(tiny_ckpt))
    assert m["data"]["calibration"]["sha256"] == data_hash(default_data_path("calib"))
    assert m["data"]["eval"]["sha256"] == data_hash(out / "eval" / "eval.jsonl")
    assert load_reference(out / "reference.r1vref").meta["data"]["sha256"] == m["data"]["eval"]["sha256"]
    assert m["options"]["gguf"] == ["q8_0", "q4_k_m"] and m["options"]["max_kl"] == 100.0
    # a release is for llama.cpp: its mmproj position table is rolled for llama.cpp's InternVL graph by default
    assert m["options"]["roll_pos_embd"] is True
    side = json.loads(sidecar_path(out / "tiny-GGUF" / "mmproj-tiny-Q8_0.gguf").read_text())
    assert side["options"]["roll_position_embd"] is True
    assert m["tool"].startswith("r1v-quant ") and m["release_key"]
    text = (out / "manifest.json").read_text()
    assert str(out) not in text and str(tiny_ckpt) not in text  # no local paths in the bytes
    # CI: JSON summary on stdout, plain progress lines (no bars, no escapes) on stderr
    summary = json.loads(proc.stdout)
    assert summary["passed"] is True and set(summary["artifacts"]) == set(m["artifacts"])
    assert "release: [1/" in proc.stderr and "\x1b[" not in proc.stderr and "\r" not in proc.stderr


@pytest.mark.slow
def test_model_cards_describe_each_folder(release_a) -> None:
    out, _ = release_a
    m = json.loads((out / "manifest.json").read_text())
    awq = (out / "tiny-AWQ" / "README.md").read_text()
    gguf = (out / "tiny-GGUF" / "README.md").read_text()
    # the default AWQ folder has a 4-bit vision tower: vLLM loads it; LMDeploy needs --awq-vision-fp16
    for needle in ("vllm serve ./tiny-AWQ --quantization awq", "--awq-vision-fp16",
                   m["data"]["calibration"]["sha256"], "## Memory", "## Validation"):
        assert needle in awq, needle
    assert "lmdeploy serve api_server ./tiny-AWQ" not in awq
    for needle in ("llama-mtmd-cli -m tiny-GGUF/tiny-Q8_0.gguf --mmproj tiny-GGUF/mmproj-tiny-Q8_0.gguf",
                   "llama-server -m tiny-GGUF/tiny-Q4_K_M.gguf --mmproj tiny-GGUF/mmproj-tiny-Q8_0.gguf",
                   "ollama create", "## Memory", m["files"]["tiny-GGUF/tiny-Q8_0.gguf"]["sha256"]):
        assert needle in gguf, needle
    for card in (awq, gguf):
        assert m["source"]["fingerprint"] in card and m["data"]["eval"]["sha256"] in card
        assert str(out) not in card and "FAILED" not in card
    kl = m["artifacts"]["gguf-q8_0"]["validation"]["groups"]["text"]["kl_mean"]
    assert f"{kl:.4g}" in gguf  # the figures come from the same data as the manifest


@pytest.mark.slow
def test_verify_passes_then_names_each_problem(release_a, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = release_a
    assert main(["verify", str(out)]) == 0
    copy = tmp_path / "dist"
    shutil.copytree(out, copy, copy_function=os.link)  # hard links: cheap; each change below unlinks first
    card = copy / "tiny-GGUF" / "README.md"
    text = card.read_text()
    card.unlink()
    card.write_text(text.replace("passed", "pasted"))
    image = next((copy / "eval" / "images").iterdir())
    image.unlink()
    (copy / "tiny-AWQ" / "extra.txt").write_text("not released\n")
    capsys.readouterr()
    assert main(["verify", str(copy), "--json"]) == 1
    cap = capsys.readouterr()
    problems = json.loads(cap.out)["problems"]
    assert any(p.startswith("tiny-GGUF/README.md: sha256") for p in problems)
    assert f"eval/images/{image.name}: missing" in problems
    assert "tiny-AWQ/extra.txt: not in the manifest" in problems
    assert "3 problem(s)" in cap.err
    (copy / "manifest.json").unlink()
    assert main(["verify", str(copy)]) == 2
    assert "manifest.json: not found" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_release_resumes_to_the_same_bytes_as_an_uninterrupted_one(
        release_a, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The twice-run comparison: a second release of the same input, killed (SIGKILL) once the reference
    is recorded and resumed, gives byte-identical artifacts, cards and manifest."""
    out_a, _ = release_a
    out = tmp_path / "dist"
    proc = subprocess.Popen(release_cmd(tiny_ckpt, out, *FULL), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / ".release" / "state.json"
    deadline = time.monotonic() + 600
    while not (state.is_file() and '"reference"' in state.read_text()):
        assert proc.poll() is None, "release ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # nothing looks finished: no manifest, no artifact folder under its final name
    assert not (out / "manifest.json").exists()
    assert not (out / "tiny-AWQ").exists() and not (out / "tiny-GGUF").exists()
    capsys.readouterr()
    assert main(["release", str(tiny_ckpt), "--out", str(out), *FULL]) == 2  # neither --resume nor --force
    assert "--resume" in capsys.readouterr().err
    assert main(["release", str(tiny_ckpt), "--out", str(out), *FULL, "--json", "--resume"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped_steps"][:2] == ["eval-data", "reference"]
    a, b = all_files(out_a), all_files(out)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    # a finished release resumed again has nothing left to do
    assert main(["release", str(tiny_ckpt), "--out", str(out), *FULL, "--resume"]) == 0
    assert "already complete" in capsys.readouterr().err


@pytest.mark.slow
def test_failed_gate_exits_1_marks_the_artifact_and_keeps_it(tiny_ckpt: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dist"
    code = main(["release", str(tiny_ckpt), "--out", str(out), "--gguf", "q8_0", *SMALL, "--max-kl", "0.001",
                 "--min-top1", "0", "--max-ppl-ratio", "1000", "--json"])
    cap = capsys.readouterr()
    assert code == 1
    assert "validation gate failed for gguf-q8_0" in cap.err
    assert json.loads(cap.out)["failed"] == ["gguf-q8_0"]
    m = json.loads((out / "manifest.json").read_text())
    a = m["artifacts"]["gguf-q8_0"]
    assert m["passed"] is False and a["status"] == "failed"
    assert any(not c["ok"] and c["metric"] == "kl_mean" for c in a["validation"]["checks"])
    assert all((out / f).is_file() for f in a["files"])  # kept for inspection
    assert "validation FAILED" in (out / "tiny-GGUF" / "README.md").read_text()
    assert main(["verify", str(out)]) == 1
    assert "failed validation gate for gguf-q8_0" in capsys.readouterr().err


# --------------------------------------------------------------------------- fast checks, no heavy work


def test_disk_preflight_fails_before_any_work(tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(release_plan, "free_bytes", lambda path: 50_000_000)
    out = tmp_path / "dist"
    t0 = time.monotonic()
    assert main(["release", str(tiny_ckpt), "--out", str(out), *FULL]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "AWQ (output + work folder)" in err and "0.05 GB is free" in err
    assert not out.exists()  # nothing written
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("args, message", [
    ([], "nothing to release"),
    (["--gguf", "q4_k_m,q3_x"], "unknown type 'q3_x'"),
    (["--awq", "--group-size", "96"], "not a multiple of --group-size 96"),
])
def test_bad_options_fail_at_once(args: list[str], message: str, tiny_ckpt: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", str(tiny_ckpt), "--out", str(tmp_path / "d"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_existing_release_needs_force_and_resume_needs_the_same_key(tiny_ckpt: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dist"
    (out / "tiny-GGUF").mkdir(parents=True)
    assert main(["release", str(tiny_ckpt), "--out", str(out), "--gguf", "q8_0"]) == 2
    assert "tiny-GGUF: already exists (pass --force" in capsys.readouterr().err
    (out / ".release").mkdir()
    (out / ".release" / "state.json").write_text(json.dumps({"key": {"other": 1}, "steps": {}}))
    assert main(["release", str(tiny_ckpt), "--out", str(out), "--gguf", "q8_0", "--resume"]) == 2
    assert "used another model, data, options or tool version" in capsys.readouterr().err


def test_eval_copy_keeps_both_kinds_and_hashes_the_same_anywhere(tmp_path: Path) -> None:
    src = default_data_path("eval")
    samples = load_samples(src)
    keep = select(samples, 3)
    assert [bool(samples[i].images) for i in keep].count(True) == 2 and len(keep) == 3
    assert select(samples, None) == list(range(len(samples)))
    a = write_eval_data(src, 3, tmp_path / "a" / "eval", overwrite=False)
    b = write_eval_data(src, 3, tmp_path / "b" / "x" / "eval", overwrite=False)
    assert a == b and a["samples"] == 3 and a["image_samples"] == 2
    copied = load_samples(tmp_path / "a" / "eval" / "eval.jsonl")
    assert [s.id for s in copied] == [samples[i].id for i in keep]
    assert all(p.parent == tmp_path / "a" / "eval" / "images" for s in copied for p in s.images)


def test_terminal_progress_takes_every_event() -> None:
    """The live display (a terminal) and the plain lines (CI) both accept the runner's events."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from r1v_quant.cli.release_cmd import _Live, _Plain

    buf = io.StringIO()
    with Progress(console=Console(file=buf, force_terminal=True, width=100)) as progress:
        live = _Live(progress)
        for kind, text in [("plan", "2 steps: a, b"), ("skip", "[1/2] a: done by the interrupted run"),
                           ("step", "[2/2] b"), ("status", "layer 1"), ("note", "awq: layer 1/3 done"),
                           ("done", "[2/2] b: done in 1.0 s")]:
            live(kind, text)
        assert progress.tasks[0].total == 2 and progress.tasks[0].completed == 2
    import re

    assert "awq: layer 1/3 done" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    _Plain()("status", "first status line is shown")
