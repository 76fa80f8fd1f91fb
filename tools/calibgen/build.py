"""Generate the calibration and evaluation data shipped in ``calib_data/``.

Assembly: deal the image and text kinds out over each split, give every sample
its own seeded random generator, wrap the builders' reasoning in an R1-style
chain, interleave text among the images and write the JSONL files and PNGs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
from fractions import Fraction
from pathlib import Path

from PIL import Image

from .charts import chart
from .documents import document
from .formulas import formula
from .geometry import geometry
from .reasoning import r1_chain
from .scenes import scene
from .tables import table
from .text_problems import text_sample

# The shipped data: calib_data/ at the repository root (this file is tools/calibgen/build.py).
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "calib_data"

# Image kinds in the order they are dealt out; charts come up three times in
# eight because they are the richest in numbers, text and thin lines.
IMAGE_SCHEDULE = ("chart", "geometry", "table", "chart", "formula", "document", "chart", "scene")
TEXT_SCHEDULE = ("math", "science", "code")

BUILDERS = {"chart": chart, "geometry": geometry, "table": table, "formula": formula, "document": document, "scene": scene}


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)  # no timestamps or text chunks: stable bytes
    return buf.getvalue()


def _seed_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _split(split: str, n_images: int, n_text: int, seen: set[str]) -> tuple[list[dict], dict[str, bytes]]:
    samples, pngs = [], {}
    counters: dict[str, int] = {}
    for i in range(n_images):
        kind = IMAGE_SCHEDULE[i % len(IMAGE_SCHEDULE)]
        k = counters[kind] = counters.get(kind, -1) + 1
        sid = f"{split}-{kind}-{k:04d}"
        for attempt in range(100):  # redraw on the (unlikely) chance of a duplicate image
            # str seeds go through sha512 in random.seed: stable across runs and platforms
            rng = random.Random(f"{sid}#{attempt}")
            args = (rng, k, _seed_int(f"{sid}#{attempt}")) if kind == "scene" else (rng, k)
            img, q, reasoning, final = BUILDERS[kind](*args)
            reasoning = r1_chain(rng, q, reasoning, final, "scene" if kind == "scene" else "image")
            png = _png(img)
            key = hashlib.sha256(png).hexdigest()
            if key not in seen:
                seen.add(key)
                break
        pngs[f"images/{sid}.png"] = png
        samples.append((Fraction(i + 1, n_images), 0, {
            "id": sid, "kind": kind, "images": [f"images/{sid}.png"],
            "messages": [{"role": "user", "content": f"<image>\n{q}"},
                         {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{final}"}]}))
    for j in range(n_text):
        kind = TEXT_SCHEDULE[j % len(TEXT_SCHEDULE)]
        k = counters[kind] = counters.get(kind, -1) + 1
        sid = f"{split}-{kind}-{k:04d}"
        for attempt in range(100):  # calib and eval must not share a question
            rng = random.Random(f"{sid}#{attempt}")
            q, reasoning, final = text_sample(kind, rng, k)
            reasoning = r1_chain(rng, q, reasoning, final, "code" if kind == "code" else "text")
            if q not in seen:
                seen.add(q)
                break
        samples.append((Fraction(j + 1, n_text), 1, {
            "id": sid, "kind": kind, "images": [],
            "messages": [{"role": "user", "content": q},
                         {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{final}"}]}))
    # Interleave text among image samples so any prefix of the file is a mixed set.
    samples.sort(key=lambda s: (s[0], s[1]))
    return [s[2] for s in samples], pngs


def _write_jsonl(path: Path, samples: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for s in samples:
            fh.write(json.dumps(s, ensure_ascii=False) + "\n")
    return path


def generate(out_dir: Path = DEFAULT_OUT, n_calib_images: int = 128, n_calib_text: int = 64,
             n_eval_images: int = 32, n_eval_text: int = 16) -> None:
    """Write calib.jsonl, eval.jsonl and images/ under out_dir (same output every run)."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    written: set[str] = set()
    for split, ni, nt in (("calib", n_calib_images, n_calib_text), ("eval", n_eval_images, n_eval_text)):
        samples, pngs = _split(split, ni, nt, seen)
        for rel, data in pngs.items():
            (out_dir / rel).write_bytes(data)
            written.add(Path(rel).name)
        _write_jsonl(out_dir / f"{split}.jsonl", samples)
    for old in (out_dir / "images").glob("*.png"):  # images of a previous, larger run
        if old.name not in written and old.name.startswith(("calib-", "eval-")):
            old.unlink()


def generate_split(out_dir: Path, split: str, n_images: int, n_text: int, avoid: Path = DEFAULT_OUT) -> Path:
    """Write ``<split>.jsonl`` and its images under out_dir: another split of the same kinds (say
    "train"), sharing no image and no text question with the calib and eval sets in ``avoid``.
    Returns the JSONL's path."""
    out_dir, avoid = Path(out_dir), Path(avoid)
    seen = {hashlib.sha256(png.read_bytes()).hexdigest() for png in (avoid / "images").glob("*.png")}
    for name in ("calib.jsonl", "eval.jsonl"):
        for line in (avoid / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if not row["images"]:
                seen.add(row["messages"][0]["content"])
    samples, pngs = _split(split, n_images, n_text, seen)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for rel, data in pngs.items():
        (out_dir / rel).write_bytes(data)
    return _write_jsonl(out_dir / f"{split}.jsonl", samples)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tools.calibgen", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: calib_data/ in the repository)")
    ap.add_argument("--calib-images", type=int, default=128)
    ap.add_argument("--calib-text", type=int, default=64)
    ap.add_argument("--eval-images", type=int, default=32)
    ap.add_argument("--eval-text", type=int, default=16)
    a = ap.parse_args(argv)
    generate(a.out, a.calib_images, a.calib_text, a.eval_images, a.eval_text)

