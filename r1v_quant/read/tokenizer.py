"""A checkpoint's tokenizer, loaded once the same way for prompts and for the GGUF vocabulary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers warns that ``skywork_chat`` is not a model type it knows; for a tokenizer that is moot."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def load_tokenizer(model_dir: Path) -> Any:
    """The folder's tokenizer (transformers' fast tokenizer); never runs remote code."""
    from transformers import AutoTokenizer

    try:
        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{model_dir}: cannot load the tokenizer ({e})") from None
