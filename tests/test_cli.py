"""The commands as users type them: the installed console script, usage errors, help at 80 columns,
MODEL by Hugging Face repo id through the cache, what the engine does not implement, NaN weights."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from r1v_quant.cli import gguf_cmd
from r1v_quant.cli.app import app
from r1v_quant.read.hub import DEFAULT_MODEL

SCRIPT = Path(sys.executable).with_name("r1v-quant")
COMMANDS = sorted(c.name for c in app.registered_commands)


def r1v(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The console script pip installed, in a pipe (stdout is not a terminal)."""
    run_env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    run_env.update(env or {})
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=run_env, cwd=cwd)


USAGE_ERRORS = [
    (["awq", "MODEL", "--bogus"], "No such option: --bogus", "r1v-quant awq"),
    (["gguf", "MODEL", "--type", "q9", "--out", "x"], "Invalid value for '--type'", "r1v-quant gguf"),
    (["nosuchcmd"], "No such command 'nosuchcmd'", "r1v-quant"),
    (["inspect", "MODEL", "--gpu-mem", "abc"], "Invalid value for '--gpu-mem'", "r1v-quant inspect"),
    (["awq", "MODEL", "--out", "x", "--samples", "0"], "Invalid value for '--samples'", "r1v-quant awq"),
    (["awq", "MODEL", "--out", "x", "--seq-len", "1"], "Invalid value for '--seq-len'", "r1v-quant awq"),
    (["reference", "MODEL"], "Missing option '--out'", "r1v-quant reference"),
]


@pytest.mark.parametrize("args,problem,command", USAGE_ERRORS, ids=[" ".join(a[:2]) for a, _, _ in USAGE_ERRORS])
def test_usage_errors_are_one_line_and_the_hint(args: list[str], problem: str, command: str, tiny_ckpt: Path) -> None:
    proc = r1v(*[str(tiny_ckpt) if a == "MODEL" else a for a in args])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 2 and lines[0].startswith("error: ") and problem in lines[0], lines
    assert lines[1] == f"Try '{command} --help' for help."
    assert proc.stdout == ""


def test_debug_shows_the_traceback(tiny_ckpt: Path) -> None:
    proc = r1v("--debug", "awq", str(tiny_ckpt), "--bogus")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def _preformatted(doc: str) -> list[str]:
    """The lines of the \\b blocks of a help text (what must come out line for line)."""
    out = []
    for block in doc.split("\b\n")[1:]:
        out += [line.strip() for line in block.split("\n\n")[0].splitlines() if line.strip()]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("columns", [None, "80"], ids=["pipe", "80-columns"])
def test_help_renders_without_broken_lines(command: str, columns: str | None) -> None:
    proc = r1v(command, "--help", env={"COLUMNS": columns} if columns else None)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    metavars = [re.sub(r"([-\d.]+<=?)?x([<>]=?[-\d.]+)?", "", line) for line in lines]  # ranges such as "x>=1" aside
    assert all(line.count("<") == line.count(">") for line in metavars)  # no metavar cut in two
    rendered = {line.strip() for line in lines}
    callback = next(c.callback for c in app.registered_commands if c.name == command)
    for line in _preformatted(callback.__doc__ or ""):
        assert line in rendered, f"{command} --help broke the line {line!r}"
    assert _preformatted(gguf_cmd.TYPES_HELP)  # the check above has lines to check


# --------------------------------------------------------------------------- MODEL by repo id


def hub_cache(root: Path, repo: str, model: Path) -> Path:
    """A Hugging Face cache laid out as huggingface_hub lays it out, holding ``model`` as ``repo``'s main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    shutil.copytree(model, snapshot, copy_function=os.link)
    return snapshot


@pytest.fixture(scope="module")
def offline_cache(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hf") / "hub"
    hub_cache(root, DEFAULT_MODEL, tiny_ckpt)
    return {"HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1"}


def test_model_is_optional_and_read_from_the_hub_cache(offline_cache: dict[str, str]) -> None:
    proc = r1v("inspect", "--json", env=offline_cache)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["model"] == DEFAULT_MODEL and r["path"].startswith(offline_cache["HF_HUB_CACHE"])
    assert r["total"]["params"] == sum(c["params"] for c in r["components"].values())


@pytest.mark.slow
def test_gguf_as_typed_names_its_folder_after_the_repo(offline_cache: dict[str, str], tmp_path: Path) -> None:
    """`r1v-quant gguf --type q4_k_m`, as the design's own usage line: ./Skywork-R1V-38B-GGUF/, the mmproj
    rolled for llama.cpp (as `release` does)."""
    proc = r1v("gguf", "--type", "q4_k_m", "--json", env=offline_cache, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["roll_pos_embd"] is True
    assert sorted(p.name for p in (tmp_path / "Skywork-R1V-38B-GGUF").glob("*.gguf")) == [
        "Skywork-R1V-38B-Q4_K_M.gguf", "mmproj-Skywork-R1V-38B-Q8_0.gguf"]


def test_a_repo_id_not_in_the_cache_offline_is_one_line(offline_cache: dict[str, str]) -> None:
    proc = r1v("inspect", "Skywork/Skywork-R1V2-38B", env=offline_cache)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "Skywork/Skywork-R1V2-38B" in proc.stderr and offline_cache["HF_HUB_CACHE"] in proc.stderr


# --------------------------------------------------------------------------- what the engine does not implement


def edited_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst, copy_function=os.link)
    cfg = dst / "config.json"
    data = json.loads(cfg.read_text())
    edit(data)
    cfg.unlink()  # a hard link: never write through it into the fixture
    cfg.write_text(json.dumps(data))
    return dst


REFUSED = [
    ("llm_config", "rope_scaling", {"type": "linear", "factor": 2.0}),
    ("llm_config", "use_sliding_window", True),
    ("llm_config", "hidden_act", "gelu"),
    ("vision_config", "hidden_act", "silu"),
    (None, "select_layer", -2),
]


@pytest.mark.slow
@pytest.mark.parametrize("part,key,value", REFUSED, ids=[k for _, k, _ in REFUSED])
@pytest.mark.parametrize("command", ["inspect", "reference", "awq", "gguf"])
def test_what_the_engine_does_not_implement_is_refused_by_every_command(part, key, value, command: str,
                                                                        tiny_ckpt: Path, tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        (d[part] if part else d)[key] = value

    model = edited_copy(tiny_ckpt, tmp_path / "m", edit)
    out = [] if command == "inspect" else ["--out", str(tmp_path / "o")]
    proc = r1v(command, str(model), *out)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert key in proc.stderr and repr(value) in proc.stderr and "does not implement" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_the_preprocessors_normalisation_is_the_one_used(tiny_ckpt: Path, tmp_path: Path) -> None:
    from PIL import Image

    from r1v_quant.engine import PromptBuilder
    from r1v_quant.read import open_checkpoint

    model = edited_copy(tiny_ckpt, tmp_path / "m", lambda d: None)
    pre = model / "preprocessor_config.json"
    data = json.loads(pre.read_text())
    data["image_mean"], data["image_std"] = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    pre.unlink()
    pre.write_text(json.dumps(data))
    Image.new("RGB", (448, 448), (255, 0, 0)).save(tmp_path / "red.png")
    ckpt = open_checkpoint(model)
    assert ckpt.config.image_mean == (0.5, 0.5, 0.5)
    p = PromptBuilder(model, ckpt.config).prepare("s", [{"role": "user", "content": "<image>\nHi"}],
                                                  [tmp_path / "red.png"])
    assert torch.allclose(p.pixels[0, :, 0, 0], torch.tensor([2.0, -2.0, -2.0]))  # (1 - .5) / .25, (0 - .5) / .25


# --------------------------------------------------------------------------- NaN weights


def with_nan(src: Path, dst: Path, victim: str) -> Path:
    """A copy whose tensor ``victim`` holds one NaN (its shard rewritten, the rest hard links)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst, copy_function=os.link)
    index = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    shard = dst / index[victim]
    tensors = load_file(shard)
    tensors[victim] = tensors[victim].clone()
    tensors[victim].view(-1)[7] = float("nan")
    shard.unlink()
    save_file(tensors, str(shard), metadata={"format": "pt"})
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("command", ["awq", "gguf", "reference"])
def test_a_nan_weight_is_one_line_naming_it_and_leaves_no_empty_folder(command: str, tiny_ckpt: Path,
                                                                        tmp_path: Path) -> None:
    victim = "language_model.model.layers.1.mlp.up_proj.weight"
    model = with_nan(tiny_ckpt, tmp_path / "m", victim)
    out = tmp_path / "new" / "out"
    args = {"awq": ["--samples", "2", "--seq-len", "256", "--max-tiles", "1"], "gguf": [], "reference": []}[command]
    proc = r1v(command, str(model), "--out", str(out), *args)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert last.startswith("error: ") and victim in last and "NaN" in last
    assert re.search(r"at index \[\d+, \d+\]", last)
    assert not out.exists() and not (tmp_path / "new").exists() or command == "awq"
    if command == "awq":  # layers before the bad one were done: kept, and the line says how to go on
        work = tmp_path / "new" / ".out.awq-work"
        assert work.is_dir() and str(work) in last and "--resume" in last
        assert not out.exists()


def test_missing_peers_fail_ci_instead_of_skipping(tmp_path: Path) -> None:
    test = tmp_path / "test_peer.py"
    test.write_text("from peers import require\n\n\ndef test_it():\n    require('no_such_peer_module')\n")
    tests_dir = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": str(tests_dir)}
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)]
    outside = subprocess.run(run, capture_output=True, text=True, env={k: v for k, v in env.items() if k != "CI"})
    in_ci = subprocess.run(run, capture_output=True, text=True, env={**env, "CI": "true"})
    assert outside.returncode == 0 and "1 skipped" in outside.stdout
    assert in_ci.returncode == 1 and "1 failed" in in_ci.stdout
