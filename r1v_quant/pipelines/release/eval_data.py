"""The eval data of a release, copied into ``dist/eval/`` with its images.

The reference and every validation read this copy, so the release carries what it was checked on,
and the data hash does not change with where the tool or the data is installed: image paths are
rewritten relative to the copy (``images/<file>``), each line is re-serialised with sorted keys,
and every sample keeps its original id.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ...calibrate.dataset import Sample, data_hash, load_samples
from ...write.atomic import atomic_dir

FILE = "eval.jsonl"


def select(samples: list[Sample], n: int | None) -> list[int]:
    """Indices of the samples kept: all, or the first ceil(n/2) with images and the first n/2 without,
    so both validation groups (image and text prompts) stay present; the other kind fills a shortfall."""
    if not n or n >= len(samples):
        return list(range(len(samples)))
    img = [i for i, s in enumerate(samples) if s.images]
    txt = [i for i, s in enumerate(samples) if not s.images]
    n_img = min(len(img), n - min(len(txt), n // 2))
    return sorted(img[:n_img] + txt[: n - n_img])


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_eval_data(src: Path, n: int | None, dest: Path, overwrite: bool) -> dict[str, Any]:
    """Copy the chosen samples and their images into ``dest`` (atomically); return what the manifest records."""
    samples = load_samples(src)  # validated: the records below parse the same lines
    records = _records(src)
    keep = select(samples, n)
    used: set[str] = set()
    with atomic_dir(dest, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        lines = []
        for i in keep:
            rec, sample = dict(records[i]), samples[i]
            names = []
            for j, image in enumerate(sample.images):
                fname = image.name if image.name not in used else f"{i:05d}-{j}-{image.name}"
                used.add(fname)
                shutil.copyfile(image, tmp / "images" / fname)
                names.append(f"images/{fname}")
            rec.pop("image", None)
            rec["images"] = names
            rec["id"] = sample.id  # a generated id ("<stem>-<line>") would change with the selection
            lines.append(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
        (tmp / FILE).write_text("".join(lines), encoding="utf-8")
    kept = [samples[i] for i in keep]
    return {"file": f"{dest.name}/{FILE}", "source": src.name, "sha256": data_hash(dest / FILE),
            "samples": len(kept), "image_samples": sum(bool(s.images) for s in kept)}
