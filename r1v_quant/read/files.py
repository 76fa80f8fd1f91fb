"""Small JSON side files of a model folder (configs, tokenizer settings, provenance records).

One reader for all of them: a missing file is ``None`` (most of these files are optional), a file
that is there but unreadable or not JSON is one :class:`~r1v_quant.errors.InputError` naming it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError


def read_json(path: Path) -> Any:
    """The parsed file, or None when it does not exist."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """The file's top-level object; {} when the file is missing or holds something else."""
    data = read_json(path)
    return data if isinstance(data, dict) else {}


CHUNK = 1 << 20


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """The file's sha256, read a MiB at a time (``progress`` gets each chunk's size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()
