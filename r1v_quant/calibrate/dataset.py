"""Calibration and evaluation samples: the JSONL format, its loader and its hash.

One JSON object per line::

    {"id": "calib-chart-0007", "kind": "chart",
     "images": ["images/calib-chart-0007.png"],
     "messages": [{"role": "user", "content": "<image>\\nWhat is ...?"},
                  {"role": "assistant", "content": "<think>\\n...\\n</think>\\n\\n..."}]}

``id`` and ``kind`` are optional, ``image`` (one path) may replace ``images``,
and image paths are relative to the JSONL file's folder.  Everything is checked
up front, because a bad sample found an hour into calibration wastes the hour:
each problem is one :class:`InputError` line, ``file:line: what``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import InputError

IMAGE_TOKEN = "<image>"
ROLES = ("system", "user", "assistant")
SPLITS = ("calib", "eval")


@dataclass(frozen=True)
class Sample:
    id: str
    images: tuple[Path, ...]  # absolute paths, in placeholder order
    messages: tuple[dict, ...]  # {"role", "content"}; one <image> per image in user turns
    kind: str  # "chart", "math", ... in the shipped data; "image" or "text" when not given


def default_data_path(split: str) -> Path:
    """The shipped ``<split>.jsonl``: the installed copy first, then the repository's."""
    if split not in SPLITS:
        raise InputError(f"unknown data split {split!r} (expected one of: {', '.join(SPLITS)})")
    here = Path(__file__).resolve()
    # A wheel carries the data inside the package; a source checkout has it at the top.
    folders = (here.parents[1] / "_calib_data", here.parents[2] / "calib_data")
    for folder in folders:
        if (folder / f"{split}.jsonl").is_file():
            return folder / f"{split}.jsonl"
    raise InputError(f"shipped {split} data not found in {' or '.join(map(str, folders))}; pass your own JSONL file")


def load_samples(path: Path) -> list[Sample]:
    """Read and validate a JSONL file of samples (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None

    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        sample = _parse(path, lineno, line)
        if sample.id in first_line:
            raise InputError(f"{path}:{lineno}: duplicate id {sample.id!r} (first on line {first_line[sample.id]})")
        first_line[sample.id] = lineno
        samples.append(sample)
    if not samples:
        raise InputError(f"{path}: no samples (the file is empty)")
    return samples


def data_hash(path: Path) -> str:
    """sha256 of the JSONL bytes followed by each referenced image's bytes, in order.

    Recorded with every quantized model so a result can be traced to its data.
    """
    path = Path(path)
    h = hashlib.sha256(path.read_bytes())
    for sample in load_samples(path):
        for image in sample.images:
            h.update(image.read_bytes())
    return h.hexdigest()


def _parse(path: Path, lineno: int, line: str) -> Sample:
    def fail(what: str) -> InputError:
        return InputError(f"{path}:{lineno}: {what}")

    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise fail(f"invalid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(rec, dict):
        raise fail(f"expected a JSON object, got {type(rec).__name__}")

    sid = rec.get("id", f"{path.stem}-{lineno}")
    if not isinstance(sid, str) or not sid:
        raise fail("'id' must be a non-empty string")

    if "image" in rec and "images" in rec:
        raise fail("give 'image' or 'images', not both")
    raw = [rec["image"]] if "image" in rec else rec.get("images", [])
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise fail("'images' must be a list of paths ('image' a single path)")

    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise fail("'messages' must be a non-empty list")
    messages = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise fail(f"message {i} must be {{\"role\": one of {'/'.join(ROLES)}, \"content\": string}}")
        messages.append({"role": m["role"], "content": m["content"]})

    # The chat template swaps each <image> for that image's tiles, so the counts must
    # match; a literal <image> outside a user turn would be expanded all the same.
    if any(IMAGE_TOKEN in m["content"] for m in messages if m["role"] != "user"):
        raise fail(f"'{IMAGE_TOKEN}' may only appear in user messages")
    n_tokens = sum(m["content"].count(IMAGE_TOKEN) for m in messages if m["role"] == "user")
    if n_tokens == 0 and len(raw) == 1:
        # One image and no placeholder: put it before the first question, as InternVL's chat() does.
        first = next((m for m in messages if m["role"] == "user"), None)
        if first is None:
            raise fail("an image needs a user message to attach to")
        first["content"] = f"{IMAGE_TOKEN}\n{first['content']}"
    elif n_tokens != len(raw):
        raise fail(f"{n_tokens} '{IMAGE_TOKEN}' placeholder(s) in user messages but {len(raw)} image(s)")

    images = []
    for p in raw:
        full = (path.parent / p).resolve()
        if not full.is_file():
            raise fail(f"image {p!r} not found")
        try:
            with Image.open(full) as im:
                im.verify()  # reads the whole file (and PNG checksums) without decoding pixels
        except Exception as e:  # Pillow raises many types for bad files; all mean the same here
            detail = " ".join(str(e).split()) or type(e).__name__
            raise fail(f"image {p!r} is not a readable image ({detail})") from None
        images.append(full)

    kind = rec.get("kind") or ("image" if images else "text")
    if not isinstance(kind, str):
        raise fail("'kind' must be a string")
    return Sample(id=sid, images=tuple(images), messages=tuple(messages), kind=kind)


def shipped_rows(split: str) -> list[dict]:
    """The shipped ``split``'s samples as JSON objects, image paths made absolute (so a subset can be
    written anywhere; for benchmarks and tests)."""
    src = default_data_path(split)
    rows = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    for r in rows:
        r["images"] = [str(src.parent / p) for p in r["images"]]
    return rows


def write_eval_subset(out: Path, images: int, texts: int) -> Path:
    """The first ``images`` samples with images and ``texts`` without of the shipped eval set, as a
    JSONL file at ``out`` with absolute image paths (for benchmarks and tests)."""
    rows = shipped_rows("eval")
    picked = [r for r in rows if r["images"]][:images] + [r for r in rows if not r["images"]][:texts]
    out.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return out
