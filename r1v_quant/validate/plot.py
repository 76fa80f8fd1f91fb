"""A small line chart drawn with Pillow (no plotting library in the dependencies).

Log-scale y axis, one coloured line per series (the last one black and thicker), a legend; deterministic bytes (no
timestamps in the PNG), written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..write.atomic import atomic_file

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
WIDTH, HEIGHT = 960, 540
LEFT, RIGHT, TOP, BOTTOM = 80, 200, 40, 60
FLOOR = 1e-6  # zeros are drawn on the floor of the log axis


def line_plot(path: Path, series: dict[str, list[float]], title: str, x_label: str, y_label: str) -> None:
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    values = [max(v, FLOOR) for vs in series.values() for v in vs if math.isfinite(v)] or [FLOOR, 1.0]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    hi = hi if hi > lo else lo + 1
    n = max(len(vs) for vs in series.values()) if series else 1
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP

    def px(i: int) -> float:
        return x0 + (x1 - x0) * (i / max(n - 1, 1))

    def py(v: float) -> float:
        return y0 - (y0 - y1) * (math.log10(max(v, FLOOR)) - lo) / (hi - lo)

    d.rectangle([x0, y1, x1, y0], outline="black")
    for e in range(lo, hi + 1):  # decade grid lines
        y = py(10.0**e)
        d.line([x0, y, x1, y], fill=(220, 220, 220))
        d.text((x0 - 8, y), f"1e{e}", fill="black", font=font, anchor="rm")
    step = max(1, n // 16)
    for i in range(0, n, step):
        d.text((px(i), y0 + 6), str(i), fill="black", font=font, anchor="mt")
    d.text(((x0 + x1) / 2, HEIGHT - 20), x_label, fill="black", font=font, anchor="mm")
    d.text((10, TOP - 20), y_label, fill="black", font=font)
    d.text(((x0 + x1) / 2, 14), title, fill="black", font=font, anchor="mm")
    for k, (name, vs) in enumerate(series.items()):
        colour = (0, 0, 0) if k == len(series) - 1 else COLOURS[k % len(COLOURS)]  # last: the layer output
        points = [(px(i), py(v)) for i, v in enumerate(vs) if math.isfinite(v)]
        if len(points) > 1:
            d.line(points, fill=colour, width=3 if k == len(series) - 1 else 2)
        for x, y in points:
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        ly = TOP + 18 * k
        d.line([x1 + 15, ly, x1 + 40, ly], fill=colour, width=3)
        d.text((x1 + 46, ly), name, fill="black", font=font, anchor="lm")
    with atomic_file(Path(path), overwrite=True) as tmp:
        img.save(tmp, format="PNG")
