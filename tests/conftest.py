"""Shared fixtures: demo checkpoints built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_harness import sdist

from r1v_quant.demo import PRESETS, build_demo_checkpoint


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` preset: LayerNorm vision tower, 4 vision + 3 LLM layers, BF16."""
    return build_demo_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", PRESETS["tiny"])


@pytest.fixture(scope="session")
def tiny_rms_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny-rms`` preset: RMSNorm + q/k norm vision tower like InternViT-6B."""
    return build_demo_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-rms", PRESETS["tiny-rms"])


@pytest.fixture(scope="session")
def llama_sdist(request: pytest.FixtureRequest) -> Path:
    """llama.cpp's sources (its converter), from the llama-cpp-python sdist."""
    return sdist(Path(request.config.cache.mkdir("llama-cpp-python-sdist")))
