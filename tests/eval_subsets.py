"""Small eval files for tests: the first few image and text samples of the shipped eval set."""

from __future__ import annotations

import json
from pathlib import Path

from r1v_quant.calibrate.dataset import default_data_path


def write_eval_subset(out: Path, images: int, texts: int) -> Path:
    """The first ``images`` samples with images and ``texts`` without, image paths made absolute."""
    src = default_data_path("eval")
    rows = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    picked = [r for r in rows if r["images"]][:images] + [r for r in rows if not r["images"]][:texts]
    for r in picked:
        r["images"] = [str(src.parent / p) for p in r["images"]]
    out.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return out
