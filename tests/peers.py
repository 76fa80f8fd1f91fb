"""The peers the proofs run against (llama.cpp through llama-cpp-python, AutoAWQ's unpacker).

Outside CI a missing peer skips its tests (with the reason in ``-ra``'s summary); in CI (``CI`` set,
as GitHub Actions and ``.ci/run`` do) it fails the run: a byte-identity or unpacker proof must never
silently not run where a release is built.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as e:  # OSError: the package is there, its shared library is not loadable
        if os.environ.get("CI"):
            pytest.fail(f"{module} is needed for this proof and CI is set: {e}", pytrace=False)
        pytest.skip(f"{module} is not installed ({e})", allow_module_level=True)
