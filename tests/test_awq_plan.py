"""``awq``'s plan: predicted peak memory against measured peaks, the refusal of a run that does not fit,
and ``--plan`` doing no work."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from r1v_quant.cli.app import main
from r1v_quant.demo import PRESETS, build_demo_checkpoint
from r1v_quant.demo.presets import LLMPreset
from r1v_quant.pipelines import awq_plan

MB = 1 << 20


@pytest.fixture(scope="module")
def wide_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A decoder layer wide enough that its weights and activations, not the process itself, are what the
    layer step adds (1536 wide, MLP 4096, 12/4 heads), with the real vocabulary."""
    preset = dataclasses.replace(PRESETS["tiny"], name="wide",
                                 llm=LLMPreset(hidden_size=1536, num_layers=1, num_heads=12, num_kv_heads=4,
                                               intermediate_size=4096))
    return build_demo_checkpoint(tmp_path_factory.mktemp("wide") / "wide", preset)


def run_awq(model: Path, out: Path, *args: str) -> dict:
    """``r1v-quant awq --json`` in a fresh process, so its peaks are its own."""
    proc = subprocess.run([sys.executable, "-m", "r1v_quant", "awq", str(model), "--out", str(out), "--json", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("samples", [4, 12])
def test_predicted_peaks_match_measured_ones(wide_ckpt: Path, tmp_path: Path, samples: int) -> None:
    """Per phase (embed, layer, assemble), the plan's peak resident memory against the measured one
    (VmHWM reset at each phase start): within 25%, both as a whole and for what the phase adds to the
    process it starts from (plus 64 MB for allocator slack, which matters in the small phases); and per
    step of the plan (VmHWM reset at each step's end), within 25% as a whole."""
    s = run_awq(wide_ckpt, tmp_path / "out", "--samples", str(samples), "--seq-len", "256", "--max-tiles", "2")
    plan = s["plan"]
    base = plan["base_host_bytes"]
    assert s["calibration"]["tokens"] == plan["calibration"]["tokens"]
    for phase, measured in s["measured_peaks"].items():
        got = measured["host_bytes"]
        want = plan["phase_peaks"][phase]["host_bytes"]
        assert got is not None
        assert abs(got - want) <= 0.25 * want, (phase, got / MB, want / MB)
        assert abs((got - base) - (want - base)) <= 0.25 * (want - base) + 64 * MB, (phase, got / MB, want / MB)
    # and step by step, under the plan's own step names (every step but assemble, which is its phase)
    steps = {st["step"]: st for st in plan["steps"]}
    assert set(s["measured_steps"]) == set(steps) - {"assemble"}
    for step, measured in s["measured_steps"].items():
        got, want = measured["host_bytes"], base + steps[step]["host_bytes"]
        assert got is not None and abs(got - want) <= 0.25 * want, (step, got / MB, want / MB)


def test_plan_option_prints_the_plan_and_does_no_work(tiny_ckpt: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["awq", str(tiny_ckpt), "--out", str(tmp_path / "o"), "--samples", "3", "--plan", "--json"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["calibration"]["samples"] == 3 and plan["calibration"]["image_tokens"] > 0
    assert plan["peak_host_bytes"] > plan["base_host_bytes"] > 0 and plan["flops_per_layer"] > 0
    assert {s["step"].split(":")[0] for s in plan["steps"]} == {"vision layer", "embed", "layer", "assemble"}
    assert not (tmp_path / "o").exists() and not any(tmp_path.iterdir())


def test_a_run_that_does_not_fit_stops_and_names_options_that_would(wide_ckpt: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """With chunks of 16384 tokens the scale search's activations dominate; memory for 2048-token chunks
    but not for those: the run stops before any work (exit 2, one error line after the plan) and names
    --chunk-tokens 2048."""
    args = ["awq", str(wide_ckpt), "--out", str(tmp_path / "o"), "--samples", "48", "--seq-len", "512",
            "--max-tiles", "1"]
    assert main([*args, "--chunk-tokens", "16384", "--plan", "--json"]) == 0
    big = json.loads(capsys.readouterr().out)["plan"]
    assert main([*args, "--chunk-tokens", "2048", "--plan", "--json"]) == 0
    small = json.loads(capsys.readouterr().out)["plan"]
    assert big["calibration"]["tokens"] > 16384 and big["peak_step"] == "layer: scale search"
    assert small["peak_host_bytes"] < big["peak_host_bytes"]
    avail = (small["peak_host_bytes"] + big["peak_host_bytes"]) // 2 - big["base_host_bytes"]
    monkeypatch.setattr(awq_plan, "host_available", lambda: avail)
    code = main([*args, "--chunk-tokens", "16384"])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the plan, printed at every start
    assert code == 2 and last.startswith("error: this run needs more memory than there is")
    assert "--chunk-tokens 2048" in last and not (tmp_path / "o").exists()
    assert not any(p.name.endswith("awq-work") for p in tmp_path.iterdir())
    # and nothing fits at all: said so, with what to try
    monkeypatch.setattr(awq_plan, "host_available", lambda: 1)
    assert main(args) == 2 and "no smaller setting found" in capsys.readouterr().err
