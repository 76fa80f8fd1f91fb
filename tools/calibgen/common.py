"""Shared pieces of the generator: colours, palettes, names, the font, number formatting and
small layout helpers used by every builder."""

from __future__ import annotations

import math
import random
from fractions import Fraction
from functools import lru_cache

from PIL import ImageDraw, ImageFont

WHITE = (255, 255, 255)
BLACK = (20, 20, 20)
GRID = (215, 215, 215)
PALETTE = [
    (66, 133, 244), (234, 67, 53), (251, 188, 5), (52, 168, 83), (171, 71, 188),
    (255, 112, 67), (38, 166, 154), (121, 85, 72), (236, 64, 122), (92, 107, 192),
]

NAMES = ["Alice", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas",
         "Kemi", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Ravi", "Sofia", "Tom"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
TOWNS = ["Riverside", "Oakridge", "Maplewood", "Stonebridge", "Lakeview", "Fairhaven",
         "Brookfield", "Hillcrest", "Westport", "Elmstead"]


# --------------------------------------------------------------------------- helpers


@lru_cache(maxsize=None)
def font(size: float) -> ImageFont.FreeTypeFont:
    # Pillow's bundled Aileron font, scalable since Pillow 10.1; it covers ASCII
    # and the degree sign, so nothing else (no superscript digits, no pi) is drawn.
    return ImageFont.load_default(size=max(8, int(size)))


def fmt(x: float | int | Fraction) -> str:
    """A number as a person would write it: 42, 3.5, 0.25, never 3.5000001."""
    if isinstance(x, Fraction) and x.denominator == 1:
        return str(x.numerator)
    if isinstance(x, int):
        return str(x)
    s = f"{float(x):.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def frac(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def dec(x: Fraction) -> str:
    """Exact decimal for a terminating fraction (3/8 -> 0.375), else 4 significant places."""
    for k in range(7):
        if (x * 10 ** k).denominator == 1:
            v = x * 10 ** k
            sign, v = ("-" if v < 0 else ""), abs(v.numerator)
            whole, part = divmod(v, 10 ** k)
            return f"{sign}{whole}" + (f".{part:0{k}d}" if k else "")
    return f"{float(x):.4f}"


def running_sum(values: list[int], show=str) -> str:
    """'12 + 7 = 19, 19 + 30 = 49': the way a careful reader adds a column."""
    steps, acc = [], values[0]
    for v in values[1:]:
        steps.append(f"{show(acc)} + {show(v)} = {show(acc + v)}")
        acc += v
    return ", then ".join(steps) if steps else show(acc)


def listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth"}.get(n, f"#{n}")


def simplify_sqrt(n: int) -> tuple[int, int]:
    """sqrt(n) = a * sqrt(b) with b square-free."""
    a, b = 1, n
    k = 2
    while k * k <= b:
        while b % (k * k) == 0:
            a, b = a * k, b // (k * k)
        k += 1
    return a, b


def clamp_aspect(w: int, h: int) -> tuple[int, int]:
    """Pad a canvas so its aspect ratio stays within 1:3 .. 3:1."""
    if w > 3 * h:
        h = math.ceil(w / 3)
    if h > 3 * w:
        w = math.ceil(h / 3)
    return w, h


def fit_font(draw: ImageDraw.ImageDraw, labels: list[str], size: int, max_width: float) -> ImageFont.FreeTypeFont:
    """Largest font <= size at which every label fits max_width."""
    while size > 9 and max(draw.textlength(t, font=font(size)) for t in labels) > max_width:
        size -= 1
    return font(size)


def wrap(draw: ImageDraw.ImageDraw, text: str, f: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=f) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines


def nice_axis(vmax: float, ticks: int = 6) -> tuple[int, int]:
    """Top of the value axis and its tick step (1, 2, 5, 10, 20, 25, 50, ...)."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000):
        top = step * math.ceil(vmax / step)
        if top / step <= ticks:
            return top, step
    raise ValueError(vmax)


def distinct_ints(rng: random.Random, n: int, lo: int, hi: int) -> list[int]:
    return rng.sample(range(lo, hi + 1), n)


def in_order_subset(rng: random.Random, items: list[str], n: int) -> list[str]:
    """n consecutive items (months, days) from a random start."""
    start = rng.randint(0, len(items) - n)
    return items[start:start + n]
