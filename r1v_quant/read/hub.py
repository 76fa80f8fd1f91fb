"""MODEL as users name it: a local folder, or a Hugging Face repo id resolved through the standard cache.

A repo id (``Skywork/Skywork-R1V-38B``, ``Skywork/Skywork-R1V2-38B``, ...; ``--revision`` for a branch,
tag or commit) is looked up in the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``) first.  When it is
not there: with ``HF_HUB_OFFLINE`` set, one line saying which id and which cache were searched; online,
the download's size is checked against the cache's free disk first, then the files a checkpoint needs
(configs, tokenizer, safetensors shards, remote-code files) are downloaded with huggingface_hub's
progress bars.  A MODEL left out is :data:`DEFAULT_MODEL`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, OutputError

DEFAULT_MODEL = "Skywork/Skywork-R1V-38B"
# what a checkpoint folder needs: configs, tokenizer, weights, remote code (not the README's images etc.)
CHECKPOINT_FILES = ["*.json", "*.safetensors", "*.py", "*.txt", "*.jinja", "*.model", "*.tiktoken"]
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
DISK_MARGIN = 1.02


@dataclass(frozen=True)
class ModelRef:
    path: Path  # the folder holding the checkpoint
    name: str  # how outputs are named: the repo's name, or the folder's


def _matches(filename: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(filename, p) for p in CHECKPOINT_FILES)


def _free_bytes(path: Path) -> int:
    p = path.resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def resolve_model(model: str | None, revision: str | None = None) -> ModelRef:
    """A local folder as it is; a repo id from the cache, downloaded first when online."""
    name = model or DEFAULT_MODEL
    local = Path(name).expanduser()
    if local.exists() or not REPO_ID.match(name):
        if revision:
            raise InputError(f"--revision applies to a Hugging Face repo id, not to the folder {name}")
        return ModelRef(local, local.resolve().name)
    from huggingface_hub import constants, snapshot_download

    label = f"{name}@{revision}" if revision else name
    cache = Path(constants.HF_HUB_CACHE)
    try:
        path = snapshot_download(name, revision=revision, local_files_only=True, allow_patterns=CHECKPOINT_FILES)
        return ModelRef(Path(path), name.split("/")[-1])
    except Exception:  # not cached (huggingface_hub names this differently across versions)
        pass
    if constants.HF_HUB_OFFLINE:
        raise InputError(f"{label}: not a local folder, and not in the Hugging Face cache {cache} (HF_HUB_OFFLINE "
                         f"is set, so nothing was downloaded); give a folder, or download it with `hf download {name}`")
    return ModelRef(_download(name, revision, label, cache), name.split("/")[-1])


def _download(name: str, revision: str | None, label: str, cache: Path) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().model_info(name, revision=revision, files_metadata=True)
    except Exception as e:  # not found, gated, no network: each its own class, all one line here
        raise InputError(f"{label}: not a local folder, not in the Hugging Face cache {cache}, and the hub did not "
                         f"answer: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    need = sum(s.size or 0 for s in info.siblings or [] if _matches(s.rfilename))
    free = _free_bytes(cache)
    if need * DISK_MARGIN > free:
        raise OutputError(f"{cache}: downloading {label} needs {need / 1e9:,.1f} GB, only {free / 1e9:,.1f} GB is free "
                          "(set HF_HUB_CACHE to a bigger disk)")
    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=CHECKPOINT_FILES))
    except OSError as e:
        raise OutputError(f"{cache}: download of {label} failed ({e})") from None
