#!/usr/bin/env python3
"""Generate the calibration and evaluation data shipped in ``calib_data/``.

    python calib_data/generate.py            # rewrites calib_data/ in place

Everything is drawn here with Pillow and numpy (no fonts, photos or text from
elsewhere), so the data has no third-party licence and is reproducible: every
sample draws from its own ``random.Random`` seeded by ``split:kind:index``, and
running the script twice gives byte-identical files.

Why synthetic data: quantization scales are fitted to the activations of the
samples, so the samples should look like the model's real work -- charts,
tables, geometry, formulas, documents and natural-ish scenes through the vision
tower, and long ``<think>`` reasoning chains through the LLM.  Because the
generator drew the numbers itself, every answer is computed, never guessed, and
the eval split can score answers as well as compare logits.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import random
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent

# Image kinds in the order they are dealt out; charts come up three times in
# eight because they are the richest in numbers, text and thin lines.
IMAGE_SCHEDULE = ("chart", "geometry", "table", "chart", "formula", "document", "chart", "scene")
TEXT_SCHEDULE = ("math", "science", "code")

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

DOUBLE_CHECKS = [
    "Let me double-check.",
    "Wait, let me verify that before I commit.",
    "Hmm, let me make sure I didn't misread anything.",
    "Let me re-check the numbers once more.",
    "Just to be safe, let me go through it again.",
    "Actually, let me confirm this another way.",
]
CONCLUDERS = [
    "So the answer is {a}.",
    "That confirms it: {a}.",
    "Okay, I'm confident the answer is {a}.",
    "Everything is consistent, so the answer is {a}.",
    "Good, both ways agree, so it's {a}.",
]


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


# --------------------------------------------------------------------------- charts

BAR_THEMES = [
    ("Fruit sold at the market", "kg", ["Apples", "Bananas", "Cherries", "Grapes", "Lemons", "Mangoes", "Pears", "Plums"], (5, 95), False),
    ("Books read per class", "books", ["Class A", "Class B", "Class C", "Class D", "Class E", "Class F", "Class G"], (8, 60), False),
    ("Monthly rainfall", "mm", MONTHS, (10, 180), True),
    ("Museum visitors per day", "visitors", DAYS, (40, 400), True),
    ("Energy use by appliance", "kWh", ["Fridge", "Heater", "Oven", "Lights", "Washer", "Dryer", "TV"], (6, 90), False),
    ("Students per club", "students", ["Chess", "Drama", "Music", "Robotics", "Art", "Science", "Sports"], (5, 48), False),
    ("Trees planted by volunteers", "trees", NAMES[:10], (3, 40), False),
]
LINE_THEMES = [
    ("Average temperature", "deg C", "month", (2, 30), ("City A", "City B")),
    ("Annual revenue", "million $", "year", (10, 90), ("North store", "South store")),
    ("Website visitors", "thousands", "year", (5, 120), ("Site X", "Site Y")),
    ("Town population", "thousands", "year", (20, 80), ("Eastville", "Westville")),
    ("Bicycles sold", "bikes", "month", (15, 140), ("Shop 1", "Shop 2")),
]
PIE_THEMES = [
    ("How students get to school", ["Bus", "Car", "Bike", "Walk", "Train", "Scooter"]),
    ("Monthly household budget", ["Rent", "Food", "Transport", "Savings", "Leisure", "Utilities"]),
    ("Favourite sport in a survey", ["Football", "Tennis", "Swimming", "Cycling", "Running", "Basketball"]),
    ("Electricity by source", ["Solar", "Wind", "Hydro", "Gas", "Coal", "Nuclear"]),
    ("Time spent on a weekday", ["Sleep", "School", "Homework", "Play", "Meals", "Reading"]),
]
CHART_OPENERS = [
    "Okay, let me look at this {what}.",
    "Alright, the image is a {what}. Let me read it carefully.",
    "Let me start by understanding what this {what} shows.",
    "Hmm, so I'm given a {what}. First I need to read off the values.",
    "Okay, so there's a {what} here and I need to answer a question about it.",
]


def bar_chart(rng: random.Random) -> tuple[Image.Image, str, str, str]:
    title, unit, pool, (lo, hi), ordered = rng.choice(BAR_THEMES)
    horizontal = rng.random() < 0.35
    n = rng.randint(4, min(9, len(pool)) if horizontal else 7)
    cats = in_order_subset(rng, pool, n) if ordered else rng.sample(pool, n)
    vals = distinct_ints(rng, n, lo, hi)
    if horizontal:  # tall canvases, so portrait images get tiled too
        w = rng.randint(380, 760)
        h = min(1200, int(w / rng.uniform(0.34, 1.1)))
    else:
        w = rng.randint(480, 1100)
        h = int(w / rng.uniform(1.2, 2.8))
    w, h = clamp_aspect(w, max(h, 260))
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    base = max(11, int(min(w, h) / 26))
    top, step = nice_axis(max(vals))
    color = rng.choice(PALETTE)
    multicolor = rng.random() < 0.4
    d.text((w / 2, base * 0.6), f"{title} ({unit})", font=font(base + 4), fill=BLACK, anchor="mt")
    if not horizontal:
        x0, x1, y0, y1 = base * 4, w - base, base * 3, h - base * 2.6
        for t in range(0, top + 1, step):
            y = y1 - (y1 - y0) * t / top
            d.line([(x0, y), (x1, y)], fill=GRID)
            d.text((x0 - 6, y), str(t), font=font(base - 1), fill=BLACK, anchor="rm")
        slot = (x1 - x0) / n
        lab_font = fit_font(d, cats, base, slot * 0.95)
        for i, (c, v) in enumerate(zip(cats, vals)):
            cx = x0 + slot * (i + 0.5)
            yt = y1 - (y1 - y0) * v / top
            d.rectangle([cx - slot * 0.3, yt, cx + slot * 0.3, y1], fill=PALETTE[i] if multicolor else color)
            d.text((cx, yt - 3), str(v), font=font(base - 1), fill=BLACK, anchor="ms")
            d.text((cx, y1 + 6), c, font=lab_font, fill=BLACK, anchor="mt")
        d.line([(x0, y0), (x0, y1), (x1, y1)], fill=BLACK, width=2)
    else:
        lab = font(base)
        x0 = base + max(d.textlength(c, font=lab) for c in cats) + 8
        x1, y0, y1 = w - base * 3, base * 3, h - base * 2.2
        for t in range(0, top + 1, step):
            x = x0 + (x1 - x0) * t / top
            d.line([(x, y0), (x, y1)], fill=GRID)
            d.text((x, y1 + 6), str(t), font=font(base - 1), fill=BLACK, anchor="mt")
        slot = (y1 - y0) / n
        for i, (c, v) in enumerate(zip(cats, vals)):
            cy = y0 + slot * (i + 0.5)
            xr = x0 + (x1 - x0) * v / top
            d.rectangle([x0, cy - slot * 0.3, xr, cy + slot * 0.3], fill=PALETTE[i] if multicolor else color)
            d.text((xr + 4, cy), str(v), font=font(base - 1), fill=BLACK, anchor="lm")
            d.text((x0 - 8, cy), c, font=lab, fill=BLACK, anchor="rm")
        d.line([(x0, y0), (x0, y1), (x1, y1)], fill=BLACK, width=2)

    orient = "horizontal bar chart" if horizontal else "bar chart"
    r = [rng.choice(CHART_OPENERS).format(what=orient),
         f"The title is \"{title} ({unit})\", so every bar is measured in {unit}.",
         f"The {'horizontal' if horizontal else 'vertical'} axis runs from 0 to {top} in steps of {step}, "
         f"and each bar has its exact value written at its end, so I don't have to estimate from the gridlines.",
         f"There are {n} bars. Reading them in order: "
         + "; ".join(f"{c} is {v}" for c, v in zip(cats, vals)) + "."]
    qtype = rng.choice(["range", "pair", "sum", "count", "mean", "top2"])
    hi_i, lo_i = vals.index(max(vals)), vals.index(min(vals))
    if qtype == "range":
        q = rng.choice(["What is the difference between the highest and the lowest bar?",
                        f"By how many {unit} does the largest value exceed the smallest one?"])
        ans = vals[hi_i] - vals[lo_i]
        r += [f"Now I need the largest and the smallest. Scanning the values, the biggest is {cats[hi_i]} with {vals[hi_i]}. "
              f"Is there anything bigger? " + ", ".join(f"{v} < {vals[hi_i]}" for v in vals if v != vals[hi_i]) + ", so no.",
              f"The smallest is {cats[lo_i]} with {vals[lo_i]}; every other value is larger than {vals[lo_i]}.",
              f"So the difference is {vals[hi_i]} - {vals[lo_i]} = {ans}.",
              rng.choice(DOUBLE_CHECKS) + f" {vals[lo_i]} + {ans} = {vals[lo_i] + ans}, which is exactly the value of {cats[hi_i]}. "
              "Also, the bar heights agree visually: the tallest bar is clearly the one for " + cats[hi_i] + ".",
              rng.choice(CONCLUDERS).format(a=f"{ans} {unit}")]
        final = f"The highest bar is {cats[hi_i]} ({vals[hi_i]}) and the lowest is {cats[lo_i]} ({vals[lo_i]}), so the difference is {vals[hi_i]} - {vals[lo_i]} = **{ans} {unit}**."
    elif qtype == "pair":
        i, j = rng.sample(range(n), 2)
        if vals[i] < vals[j]:
            i, j = j, i
        ans = vals[i] - vals[j]
        q = rng.choice([f"How much greater is the value for {cats[i]} than for {cats[j]}?",
                        f"What is the difference between {cats[i]} and {cats[j]} in this chart?"])
        r += [f"The question only involves two bars: {cats[i]} and {cats[j]}.",
              f"{cats[i]} is labelled {vals[i]} and {cats[j]} is labelled {vals[j]}. Since {vals[i]} > {vals[j]}, I subtract the smaller from the larger.",
              f"{vals[i]} - {vals[j]} = {ans}.",
              rng.choice(DOUBLE_CHECKS) + f" Going the other way, {vals[j]} + {ans} = {vals[i]}. Yes, that matches.",
              "I should also make sure I didn't swap the labels with neighbouring bars; the labels sit right next to each bar, so the pairing is clear.",
              rng.choice(CONCLUDERS).format(a=f"{ans} {unit}")]
        final = f"{cats[i]} has {vals[i]} and {cats[j]} has {vals[j]}; the difference is {vals[i]} - {vals[j]} = **{ans} {unit}**."
    elif qtype == "sum":
        ans = sum(vals)
        q = rng.choice([f"What is the total of all the bars in the chart?",
                        f"Add up all the values shown. What is the total in {unit}?"])
        r += [f"I need to add all {n} values. Let me do it step by step: {running_sum(vals)}.",
              f"So the total is {ans}.",
              rng.choice(DOUBLE_CHECKS) + f" Adding in reverse order: {running_sum(vals[::-1])}. Same result, {ans}.",
              rng.choice(CONCLUDERS).format(a=f"{ans} {unit}")]
        final = f"Adding the {n} bars: {' + '.join(map(str, vals))} = **{ans} {unit}**."
    elif qtype == "count":
        t = rng.randint(min(vals) + 1, max(vals) - 1)
        while t in vals:
            t += 1
        above = [(c, v) for c, v in zip(cats, vals) if v > t]
        ans = len(above)
        q = f"How many categories have a value greater than {t}?"
        r += [f"Now I go through each bar and compare it with {t}:"]
        r += [f"{c}: {v} is {'greater' if v > t else 'not greater'} than {t}." for c, v in zip(cats, vals)]
        r += [f"The ones above {t} are " + (listing([c for c, _ in above]) if above else "none") + f", which makes {ans}.",
              rng.choice(DOUBLE_CHECKS) + f" No value is exactly {t}, so there are no borderline cases to worry about. "
              f"{n - ans} bars are below {t} and {ans} are above, and {n - ans} + {ans} = {n}, the number of bars.",
              rng.choice(CONCLUDERS).format(a=str(ans))]
        final = f"The categories above {t} are {listing([c for c, _ in above]) if above else 'none'}, so the answer is **{ans}**."
    elif qtype == "mean":
        total = sum(vals)
        mean = Fraction(total, n)
        q = rng.choice(["What is the average value of the bars?", f"What is the mean of the {n} values in the chart?"])
        exact = mean.denominator == 1
        shown = fmt(mean) if exact or (mean * 100).denominator == 1 else f"about {float(mean):.2f}"
        r += [f"The average is the sum divided by the number of bars, which is {n}.",
              f"Sum: {running_sum(vals)}. So the sum is {total}.",
              f"Then {total} / {n} = {frac(mean)}" + ("." if exact else f", which is {float(mean):.4f}..., so about {float(mean):.2f}."),
              rng.choice(DOUBLE_CHECKS) + (f" {n} x {fmt(mean)} = {total}, exactly the sum. Good." if exact else
                                           f" {n} x {round(float(mean), 2):.2f} = {n * round(float(mean), 2):.2f}, which is {total} up to the rounding. Good."),
              rng.choice(CONCLUDERS).format(a=f"{shown} {unit}")]
        final = f"The sum is {total} over {n} bars, so the mean is {total}/{n} = **{shown.replace('about ', '~')} {unit}**."
    else:  # top2
        order = sorted(range(n), key=lambda k: -vals[k])
        a, b = order[0], order[1]
        ans = vals[a] - vals[b]
        q = "Which category has the largest value, and by how much does it exceed the second largest?"
        r += [f"Sorting the values from largest to smallest: " + ", ".join(f"{cats[k]} ({vals[k]})" for k in order) + ".",
              f"So the largest is {cats[a]} with {vals[a]}, and the second largest is {cats[b]} with {vals[b]}.",
              f"The gap is {vals[a]} - {vals[b]} = {ans}.",
              rng.choice(DOUBLE_CHECKS) + f" Is any other bar between {vals[b]} and {vals[a]}? Looking at the list, no. And {vals[b]} + {ans} = {vals[a]}.",
              rng.choice(CONCLUDERS).format(a=f"{cats[a]}, by {ans} {unit}")]
        final = f"**{cats[a]}** has the largest value ({vals[a]}), exceeding the second largest, {cats[b]} ({vals[b]}), by **{ans} {unit}**."
    return img, q, " ".join(r), final


def line_chart(rng: random.Random) -> tuple[Image.Image, str, str, str]:
    title, unit, xkind, (lo, hi), series_names = rng.choice(LINE_THEMES)
    n = rng.randint(5, 9)
    if xkind == "year":
        start = rng.randint(2008, 2016)
        xs = [str(start + i) for i in range(n)]
    else:
        xs = in_order_subset(rng, MONTHS, n)
    two = rng.random() < 0.4
    ys = [rng.randint(lo, hi) for _ in range(n)]
    ys2 = [rng.randint(lo, hi) for _ in range(n)] if two else None
    if two:  # no ties between the series, so "which is higher" always has an answer
        ys2 = [v + 1 if v == u else v for u, v in zip(ys, ys2)]
    w = rng.randint(520, 1200)
    h = int(w / rng.uniform(1.3, 3.0))
    w, h = clamp_aspect(w, max(h, 280))
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    base = max(11, int(min(w, h) / 24))
    allv = ys + (ys2 or [])
    top, step = nice_axis(max(allv) * 1.08)
    d.text((w / 2, base * 0.5), f"{title} ({unit})", font=font(base + 3), fill=BLACK, anchor="mt")
    x0, x1, y0, y1 = base * 3.5, w - base * 1.5, base * 3.2, h - base * 2.2
    for t in range(0, top + 1, step):
        y = y1 - (y1 - y0) * t / top
        d.line([(x0, y), (x1, y)], fill=GRID)
        d.text((x0 - 6, y), str(t), font=font(base - 2), fill=BLACK, anchor="rm")
    px = [x0 + (x1 - x0) * (i + 0.5) / n for i in range(n)]
    lab = fit_font(d, xs, base - 1, (x1 - x0) / n * 0.95)
    for x, s in zip(px, xs):
        d.text((x, y1 + 6), s, font=lab, fill=BLACK, anchor="mt")
    d.line([(x0, y0), (x0, y1), (x1, y1)], fill=BLACK, width=2)
    cols = rng.sample(PALETTE, 2)
    for k, (vals, col) in enumerate([(ys, cols[0])] + ([(ys2, cols[1])] if two else [])):
        pts = [(x, y1 - (y1 - y0) * v / top) for x, v in zip(px, vals)]
        d.line(pts, fill=col, width=3)
        other = ys2 if k == 0 else ys
        for i, ((x, y), v) in enumerate(zip(pts, vals)):
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=col)
            if two:  # the lower series is labelled below its points, the upper above
                below = other[i] > v
            else:  # valleys are labelled below, so the label does not sit on the line
                nb = [vals[j] for j in (i - 1, i + 1) if 0 <= j < n]
                below = v < sum(nb) / len(nb)
            d.text((x, y + 8 if below else y - 8), str(v), font=font(base - 2), fill=col, anchor="mt" if below else "ms",
                   stroke_width=3, stroke_fill=WHITE)
    if two:
        lx = x1 - base * 9
        for k, (name, col) in enumerate(zip(series_names, cols)):
            yy = y0 - base * 1.4 + k * (base + 2)
            d.line([(lx, yy), (lx + base * 1.5, yy)], fill=col, width=3)
            d.text((lx + base * 2, yy), name, font=font(base - 2), fill=BLACK, anchor="lm")

    what = "line chart with two series" if two else "line chart"
    r = [rng.choice(CHART_OPENERS).format(what=what),
         f"The title is \"{title} ({unit})\" and the horizontal axis lists the {xkind}s {xs[0]} to {xs[-1]}, {n} points in total.",
         "Each point has its value written next to it, which makes this much easier than reading the gridlines."]
    if two:
        r.append(f"The legend says the first colour is {series_names[0]} and the second is {series_names[1]}.")
        r.append(f"{series_names[0]}: " + ", ".join(f"{x}: {v}" for x, v in zip(xs, ys)) + ".")
        r.append(f"{series_names[1]}: " + ", ".join(f"{x}: {v}" for x, v in zip(xs, ys2)) + ".")
        qtype = rng.choice(["above", "gap"])
        a, b = series_names
        if qtype == "above":
            q = f"In how many {xkind}s is {a} higher than {b}?"
            wins = [x for x, u, v in zip(xs, ys, ys2) if u > v]
            r += [f"I need to compare the two series point by point."]
            r += [f"{x}: {u} vs {v}, so {a if u > v else b} is higher." for x, u, v in zip(xs, ys, ys2)]
            ans = len(wins)
            r += [f"{a} is higher in " + (listing(wins) if wins else "none of them") + f", that's {ans}.",
                  rng.choice(DOUBLE_CHECKS) + f" {b} is higher in {n - ans} {xkind}s, and {ans} + {n - ans} = {n}, so every point was counted once. "
                  "There are no ties, which would have been ambiguous.",
                  rng.choice(CONCLUDERS).format(a=str(ans))]
            final = f"{a} is above {b} in {listing(wins) if wins else 'no ' + xkind}, i.e. **{ans}** {xkind}{'s' if ans != 1 else ''}."
        else:
            gaps = [abs(u - v) for u, v in zip(ys, ys2)]
            i = gaps.index(max(gaps))
            if gaps.count(max(gaps)) > 1:
                # ask about a fixed point instead of an argmax with ties
                i = rng.randrange(n)
                q = f"What is the difference between {a} and {b} in {xs[i]}?"
                ans = gaps[i]
                r += [f"At {xs[i]}, {a} is {ys[i]} and {b} is {ys2[i]}.",
                      f"The difference is {max(ys[i], ys2[i])} - {min(ys[i], ys2[i])} = {ans}.",
                      rng.choice(DOUBLE_CHECKS) + f" I must take both values from the same {xkind}, {xs[i]}; the labels for that column are {ys[i]} and {ys2[i]}. "
                      f"{min(ys[i], ys2[i])} + {ans} = {max(ys[i], ys2[i])}.",
                      rng.choice(CONCLUDERS).format(a=f"{ans} {unit}")]
                final = f"In {xs[i]}: |{ys[i]} - {ys2[i]}| = **{ans} {unit}**."
            else:
                q = f"In which {xkind} is the gap between {a} and {b} the largest, and how big is it?"
                ans = gaps[i]
                r += ["I'll compute the absolute difference at each point: "
                      + ", ".join(f"{x}: |{u} - {v}| = {g}" for x, u, v, g in zip(xs, ys, ys2, gaps)) + ".",
                      f"The largest of these is {ans}, at {xs[i]}.",
                      rng.choice(DOUBLE_CHECKS) + f" The gaps again: {', '.join(map(str, gaps))}. The maximum is {ans} and it occurs only once.",
                      rng.choice(CONCLUDERS).format(a=f"{xs[i]}, with a gap of {ans} {unit}")]
                final = f"The gap is largest in **{xs[i]}**: |{ys[i]} - {ys2[i]}| = **{ans} {unit}**."
        return img, q, " ".join(r), final

    r.append("Reading the points from left to right: " + ", ".join(f"{x}: {v}" for x, v in zip(xs, ys)) + ".")
    diffs = [b - a for a, b in zip(ys, ys[1:])]
    qtype = rng.choice(["jump", "change", "extreme", "value"])
    if qtype == "jump" and diffs.count(max(diffs)) == 1 and max(diffs) > 0:
        i = diffs.index(max(diffs))
        q = f"Between which two consecutive {xkind}s did the value increase the most, and by how much?"
        r += ["Now the change between each pair of neighbours: "
              + ", ".join(f"{xs[k]} to {xs[k + 1]}: {ys[k + 1]} - {ys[k]} = {diffs[k]}" for k in range(n - 1)) + ".",
              f"The largest increase is {diffs[i]}, from {xs[i]} to {xs[i + 1]}.",
              rng.choice(DOUBLE_CHECKS) + f" {ys[i]} + {diffs[i]} = {ys[i + 1]}, correct. Negative changes are decreases, so they can't be the answer, "
              f"and none of the other positive changes reaches {diffs[i]}.",
              rng.choice(CONCLUDERS).format(a=f"from {xs[i]} to {xs[i + 1]}, an increase of {diffs[i]} {unit}")]
        final = f"The biggest rise is from **{xs[i]} to {xs[i + 1]}**: {ys[i + 1]} - {ys[i]} = **{diffs[i]} {unit}**."
    elif qtype in ("jump", "change"):
        ch = ys[-1] - ys[0]
        q = f"What is the overall change in value from {xs[0]} to {xs[-1]}?"
        word = "increase" if ch > 0 else "decrease" if ch < 0 else "no change"
        r += [f"The overall change only depends on the first and last points, not on the ups and downs in between.",
              f"At {xs[0]} the value is {ys[0]}; at {xs[-1]} it is {ys[-1]}.",
              f"{ys[-1]} - {ys[0]} = {ch}, so that's {'an ' + word if ch else word}" + (f" of {abs(ch)}." if ch else "."),
              rng.choice(DOUBLE_CHECKS) + " Summing the step-by-step changes should give the same: "
              + " + ".join(f"({v})" for v in diffs) + f" = {sum(diffs)}. Yes, that equals {ch}.",
              rng.choice(CONCLUDERS).format(a=f"{ch:+d} {unit}")]
        final = f"From {ys[0]} in {xs[0]} to {ys[-1]} in {xs[-1]}: {ys[-1]} - {ys[0]} = **{ch:+d} {unit}** ({word})."
    elif qtype == "extreme" and ys.count(min(ys)) == 1 and ys.count(max(ys)) == 1:
        lo_i, hi_i = ys.index(min(ys)), ys.index(max(ys))
        q = f"In which {xkind} was the value lowest, and in which was it highest?"
        r += [f"Scanning for the minimum: the smallest label is {ys[lo_i]} at {xs[lo_i]}; all others are larger.",
              f"And the maximum: {ys[hi_i]} at {xs[hi_i]}.",
              rng.choice(DOUBLE_CHECKS) + " Sorted values: " + ", ".join(map(str, sorted(ys))) + f". First is {ys[lo_i]}, last is {ys[hi_i]}, each appears once.",
              f"The range, just for completeness, is {ys[hi_i]} - {ys[lo_i]} = {ys[hi_i] - ys[lo_i]}.",
              rng.choice(CONCLUDERS).format(a=f"lowest in {xs[lo_i]}, highest in {xs[hi_i]}")]
        final = f"Lowest: **{xs[lo_i]}** ({ys[lo_i]} {unit}); highest: **{xs[hi_i]}** ({ys[hi_i]} {unit})."
    else:
        i, j = sorted(rng.sample(range(n), 2))
        s = ys[i] + ys[j]
        q = f"What is the sum of the values in {xs[i]} and {xs[j]}?"
        r += [f"I need the values at two specific {xkind}s. At {xs[i]} the label says {ys[i]}; at {xs[j]} it says {ys[j]}.",
              f"{ys[i]} + {ys[j]} = {s}.",
              rng.choice(DOUBLE_CHECKS) + f" Counting positions: {xs[i]} is point {i + 1} and {xs[j]} is point {j + 1} on the axis, and the labels above those points are {ys[i]} and {ys[j]}. "
              f"{s} - {ys[j]} = {ys[i]}, consistent.",
              rng.choice(CONCLUDERS).format(a=f"{s} {unit}")]
        final = f"{xs[i]}: {ys[i]}, {xs[j]}: {ys[j]}; sum = **{s} {unit}**."
    return img, q, " ".join(r), final


def pie_shares(rng: random.Random, n: int) -> list[int]:
    while True:
        w = [rng.randint(5, 40) for _ in range(n)]
        p = [round(100 * x / sum(w)) for x in w]
        p[p.index(max(p))] += 100 - sum(p)
        if min(p) >= 4 and len(set(p)) == n:
            return p


def pie_chart(rng: random.Random) -> tuple[Image.Image, str, str, str]:
    title, pool = rng.choice(PIE_THEMES)
    n = rng.randint(3, 6)
    cats = rng.sample(pool, n)
    pct = pie_shares(rng, n)
    h = rng.randint(300, 560)
    w = min(1200, int(h * rng.uniform(1.4, 2.4)))
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    base = max(11, int(h / 24))
    d.text((w / 2, base * 0.5), title, font=font(base + 3), fill=BLACK, anchor="mt")
    rad = min((h - base * 4) / 2, w * 0.28)
    cx, cy = base + rad + 10, base * 2.5 + (h - base * 2.5) / 2
    cols = rng.sample(PALETTE, n)
    start = -90.0
    for p, col in zip(pct, cols):
        end = start + 360 * p / 100
        d.pieslice([cx - rad, cy - rad, cx + rad, cy + rad], start, end, fill=col, outline=WHITE, width=2)
        if p >= 8:
            mid = math.radians((start + end) / 2)
            d.text((cx + 0.62 * rad * math.cos(mid), cy + 0.62 * rad * math.sin(mid)), f"{p}%",
                   font=font(base), fill=WHITE, anchor="mm", stroke_width=1, stroke_fill=BLACK)
        start = end
    lx = cx + rad + base * 2
    for i, (c, p, col) in enumerate(zip(cats, pct, cols)):
        y = cy - n * base * 0.85 + i * base * 1.7
        d.rectangle([lx, y - base / 2, lx + base, y + base / 2], fill=col)
        d.text((lx + base * 1.5, y), f"{c}: {p}%", font=font(base), fill=BLACK, anchor="lm")

    r = [rng.choice(CHART_OPENERS).format(what="pie chart"),
         f"The title is \"{title}\". There are {n} slices, and the legend gives each one with its percentage: "
         + ", ".join(f"{c} {p}%" for c, p in zip(cats, pct)) + ".",
         f"First a sanity check: {running_sum(pct)}. Good, the shares add up to 100%, so I've read them all."]
    qtype = rng.choice(["combined", "units", "rest", "ratio"])
    if qtype == "combined":
        a, b = rng.sample(range(n), 2)
        ans = pct[a] + pct[b]
        q = f"What percentage do {cats[a]} and {cats[b]} make up together?"
        r += [f"{cats[a]} is {pct[a]}% and {cats[b]} is {pct[b]}%. Together that's {pct[a]} + {pct[b]} = {ans}%.",
              rng.choice(DOUBLE_CHECKS) + f" The remaining slices should then be 100 - {ans} = {100 - ans}%: "
              + (" + ".join(str(pct[k]) for k in range(n) if k not in (a, b)) or "0") + f" = {100 - ans}. Consistent.",
              rng.choice(CONCLUDERS).format(a=f"{ans}%")]
        final = f"{cats[a]} ({pct[a]}%) + {cats[b]} ({pct[b]}%) = **{ans}%**."
    elif qtype == "units":
        total = rng.choice([200, 300, 400, 500, 800, 1000, 1200, 2000])
        a = rng.randrange(n)
        ans = total * pct[a] // 100
        what = "people" if "survey" in title or "students" in title else "units"
        q = f"If the chart represents {total} {what} in total, how many {what} does the {cats[a]} slice stand for?"
        r += [f"{cats[a]} is {pct[a]}% of the whole, and the whole is {total}.",
              f"So I need {pct[a]}% of {total}, which is {total} x {pct[a]} / 100. {total} / 100 = {fmt(total / 100)}, and {fmt(total / 100)} x {pct[a]} = {ans}.",
              rng.choice(DOUBLE_CHECKS) + f" {ans} / {total} = {fmt(ans / total)}, i.e. {pct[a]}%. And the number is a whole number, which makes sense for {what}.",
              rng.choice(CONCLUDERS).format(a=f"{ans} {what}")]
        final = f"{pct[a]}% of {total} = {total} x {pct[a]}/100 = **{ans} {what}**."
    elif qtype == "rest":
        a = rng.randrange(n)
        ans = 100 - pct[a]
        q = f"What share of the chart is not {cats[a]}?"
        r += [f"{cats[a]} is {pct[a]}%, and the whole pie is 100%, so everything else is 100 - {pct[a]} = {ans}%.",
              rng.choice(DOUBLE_CHECKS) + " Adding the other slices directly: " + running_sum([pct[k] for k in range(n) if k != a]) + f". That's {ans}%.",
              rng.choice(CONCLUDERS).format(a=f"{ans}%")]
        final = f"Everything except {cats[a]}: 100% - {pct[a]}% = **{ans}%**."
    else:
        order = sorted(range(n), key=lambda k: -pct[k])
        a, b = order[0], order[-1]
        ans = pct[a] - pct[b]
        q = "How many percentage points larger is the biggest slice than the smallest slice?"
        r += ["Ordering the slices by size: " + ", ".join(f"{cats[k]} {pct[k]}%" for k in order) + ".",
              f"The biggest is {cats[a]} at {pct[a]}% and the smallest is {cats[b]} at {pct[b]}%.",
              f"The difference is {pct[a]} - {pct[b]} = {ans} percentage points.",
              rng.choice(DOUBLE_CHECKS) + f" Visually, the {cats[a]} slice is the widest wedge and {cats[b]} the thinnest, which agrees. {pct[b]} + {ans} = {pct[a]}.",
              "Note the question asks for percentage points, not a relative percentage, so I just subtract.",
              rng.choice(CONCLUDERS).format(a=f"{ans} percentage points")]
        final = f"Largest {cats[a]} ({pct[a]}%) minus smallest {cats[b]} ({pct[b]}%) = **{ans} percentage points**."
    return img, q, " ".join(r), final


def scatter_plot(rng: random.Random) -> tuple[Image.Image, str, str, str]:
    n = rng.randint(5, 9)
    pts: list[tuple[int, int]] = []
    while len(pts) < n:  # keep points apart (and off y = x) so labels never collide
        p = (rng.randint(0, 10), rng.randint(0, 10))
        if p[0] != p[1] and all(max(abs(p[0] - a), abs(p[1] - b)) >= 2 for a, b in pts):
            pts.append(p)
    letters = [chr(65 + i) for i in range(n)]
    table = rng.random() < 0.5
    side = rng.randint(320, 620)
    w = int(side * (1.55 if table else rng.uniform(0.9, 1.3)))
    h = side
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    base = max(11, int(side / 26))
    x0, y0 = base * 2.5, base * 2.6
    span = h - y0 - base * 2.3
    x1, y1 = x0 + span if table else w - base * 1.5, y0 + span
    d.text(((x0 + x1) / 2, base * 0.5), "Points in the plane", font=font(base + 2), fill=BLACK, anchor="mt")
    for t in range(11):
        gx, gy = x0 + (x1 - x0) * t / 10, y1 - (y1 - y0) * t / 10
        d.line([(gx, y0), (gx, y1)], fill=GRID)
        d.line([(x0, gy), (x1, gy)], fill=GRID)
        d.text((gx, y1 + 5), str(t), font=font(base - 2), fill=BLACK, anchor="mt")
        d.text((x0 - 5, gy), str(t), font=font(base - 2), fill=BLACK, anchor="rm")
    d.line([(x0, y0), (x0, y1), (x1, y1)], fill=BLACK, width=2)
    d.text((x1, y1 + base * 1.3), "x", font=font(base), fill=BLACK, anchor="rt")
    d.text((x0, y0 - base * 0.5), "y", font=font(base), fill=BLACK, anchor="ms")
    col = rng.choice(PALETTE)
    for (px, py), L in zip(pts, letters):
        sx, sy = x0 + (x1 - x0) * px / 10, y1 - (y1 - y0) * py / 10
        d.ellipse([sx - 5, sy - 5, sx + 5, sy + 5], fill=col)
        d.text((sx + 6, sy - 4), L, font=font(base), fill=BLACK, anchor="ls")
    if table:
        for i, ((px, py), L) in enumerate(zip(pts, letters)):
            d.text((x1 + base * 2, y0 + i * base * 1.5), f"{L} = ({px}, {py})", font=font(base), fill=BLACK, anchor="lt")

    r = [rng.choice(CHART_OPENERS).format(what="scatter plot"),
         f"Both axes go from 0 to 10 with a gridline at every integer, and there are {n} points labelled {letters[0]} to {letters[-1]}.",
         ("A list next to the plot gives the coordinates, and I can confirm them against the grid."
          if table else "The points sit exactly on grid intersections, so I can read their coordinates by counting gridlines."),
         "Reading them: " + ", ".join(f"{L} = ({a}, {b})" for L, (a, b) in zip(letters, pts)) + "."]
    qtype = rng.choice(["above", "slope", "dist", "highest"])
    if qtype == "above":
        above = [L for L, (a, b) in zip(letters, pts) if b > a]
        ans = len(above)
        q = "How many of the points lie above the line y = x?"
        r += ["A point is above y = x exactly when its y-coordinate is bigger than its x-coordinate. Let me check each:"]
        r += [f"{L}: y = {b} {'>' if b > a else '<'} x = {a}, {'above' if b > a else 'below'}." for L, (a, b) in zip(letters, pts)]
        r += [f"Above: {listing(above) if above else 'none'}, so {ans} points.",
              rng.choice(DOUBLE_CHECKS) + f" No point has x = y, so none lies on the line itself. Below the line there are {n - ans}, and {ans} + {n - ans} = {n}.",
              rng.choice(CONCLUDERS).format(a=str(ans))]
        final = f"Points with y > x: {listing(above) if above else 'none'} -> **{ans}**."
    elif qtype == "slope":
        i, j = rng.sample(range(n), 2)
        while pts[i][0] == pts[j][0]:
            i, j = rng.sample(range(n), 2)
        (ax, ay), (bx, by) = pts[i], pts[j]
        m = Fraction(by - ay, bx - ax)
        q = f"What is the slope of the line through points {letters[i]} and {letters[j]}?"
        r += [f"{letters[i]} = ({ax}, {ay}) and {letters[j]} = ({bx}, {by}).",
              f"Slope = (y2 - y1) / (x2 - x1) = ({by} - {ay}) / ({bx} - {ax}) = {by - ay} / {bx - ax}"
              + (f", which simplifies to {frac(m)}." if frac(m) != f"{by - ay}/{bx - ax}" else "."),
              rng.choice(DOUBLE_CHECKS) + f" Taking the points in the other order: ({ay} - {by}) / ({ax} - {bx}) = {ay - by} / {ax - bx} = {frac(m)}. Same.",
              f"The sign makes sense too: going from the left point to the right point the line goes {'up' if m > 0 else 'down' if m < 0 else 'flat'}.",
              rng.choice(CONCLUDERS).format(a=frac(m))]
        final = f"Slope = ({by} - {ay}) / ({bx} - {ax}) = **{frac(m)}**."
    elif qtype == "dist":
        i, j = rng.sample(range(n), 2)
        (ax, ay), (bx, by) = pts[i], pts[j]
        dx, dy = bx - ax, by - ay
        s2 = dx * dx + dy * dy
        a_, b_ = simplify_sqrt(s2)
        exact = str(a_) if b_ == 1 else (f"sqrt({b_})" if a_ == 1 else f"{a_}*sqrt({b_})")
        approx = f"{math.sqrt(s2):.2f}"
        q = f"What is the distance between points {letters[i]} and {letters[j]}?"
        r += [f"{letters[i]} = ({ax}, {ay}), {letters[j]} = ({bx}, {by}). The distance formula is sqrt(dx^2 + dy^2).",
              f"dx = {bx} - {ax} = {dx}, dy = {by} - {ay} = {dy}.",
              f"dx^2 + dy^2 = {dx * dx} + {dy * dy} = {s2}.",
              f"sqrt({s2})" + (f" = {a_} exactly." if b_ == 1 else f" = {exact}, which is about {approx}."),
              rng.choice(DOUBLE_CHECKS) + f" Squaring back: {approx}^2 is about {float(approx) ** 2:.2f}, close to {s2}. "
              "The sign of dx and dy doesn't matter since they are squared.",
              rng.choice(CONCLUDERS).format(a=exact if b_ == 1 else f"{exact} (about {approx})")]
        final = f"d = sqrt({dx}^2 + {dy}^2) = sqrt({s2}) = **{exact}**" + ("" if b_ == 1 else f" ~ **{approx}**") + "."
    else:
        k = max(range(n), key=lambda t: (pts[t][1], -t))
        if [p[1] for p in pts].count(pts[k][1]) > 1:
            k = max(range(n), key=lambda t: (pts[t][0], -t))
            key, name = 0, "x"
            q = "Which point has the largest x-coordinate?"
        else:
            key, name = 1, "y"
            q = "Which point is highest in the plot, i.e. has the largest y-coordinate?"
        vals = [p[key] for p in pts]
        if vals.count(vals[k]) > 1:  # both coordinates tied: ask for a plain sum instead
            s = sum(p[0] for p in pts)
            q = "What is the sum of the x-coordinates of all the points?"
            r += [f"Sum of x-coordinates: {running_sum([p[0] for p in pts])}.",
                  rng.choice(DOUBLE_CHECKS) + f" In reverse: {running_sum([p[0] for p in pts][::-1])}.",
                  rng.choice(CONCLUDERS).format(a=str(s))]
            final = f"Sum of x-coordinates = **{s}**."
        else:
            r += [f"The {name}-coordinates are: " + ", ".join(f"{L}: {p[key]}" for L, p in zip(letters, pts)) + ".",
                  f"The largest is {vals[k]}, belonging to {letters[k]}, and no other point shares it.",
                  rng.choice(DOUBLE_CHECKS) + f" On the plot, {letters[k]} is the {'top-most' if key else 'right-most'} dot, at {name} = {vals[k]}.",
                  rng.choice(CONCLUDERS).format(a=f"{letters[k]} {pts[k]}")]
            final = f"**{letters[k]}** at ({pts[k][0]}, {pts[k][1]}) has the largest {name}-coordinate ({vals[k]})."
    return img, q, " ".join(r), final


def chart(rng: random.Random, index: int):
    # cycle the four chart types so every split gets all of them
    return [bar_chart, line_chart, pie_chart, scatter_plot][index % 4](rng)


# --------------------------------------------------------------------------- geometry

TRIPLES = [(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29), (6, 8, 10), (9, 12, 15), (12, 16, 20), (9, 40, 41)]
GEO_OPENERS = [
    "Okay, let me look at the figure.",
    "Alright, this is a geometry figure. Let me note what's marked on it.",
    "Let me see what the diagram gives me.",
    "Okay, so I have a diagram with some measurements on it.",
]


class Figure:
    """World coordinates (y up) mapped onto a canvas with room for labels."""

    def __init__(self, rng: random.Random, pts: list[tuple[float, float]], extra: float = 0.0):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        self.minx, self.maxx = min(xs) - extra, max(xs) + extra
        self.miny, self.maxy = min(ys) - extra, max(ys) + extra
        span = max(self.maxx - self.minx, self.maxy - self.miny)
        self.s = rng.randint(240, 620) / span
        self.m = rng.randint(55, 90)
        w = int((self.maxx - self.minx) * self.s + 2 * self.m)
        h = int((self.maxy - self.miny) * self.s + 2 * self.m)
        w, h = clamp_aspect(max(w, 300), max(h, 200))
        self.ox = (w - (self.maxx - self.minx) * self.s) / 2
        self.oy = (h - (self.maxy - self.miny) * self.s) / 2
        bg = rng.choice([WHITE, (250, 248, 240), (245, 250, 255)])
        self.img = Image.new("RGB", (w, h), bg)
        self.d = ImageDraw.Draw(self.img)
        self.base = max(13, int(min(w, h) / 20))
        self.ink = rng.choice([BLACK, (30, 40, 120), (90, 30, 30)])

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (self.ox + (x - self.minx) * self.s, self.img.height - self.oy - (y - self.miny) * self.s)

    def poly(self, pts):
        q = [self.p(*a) for a in pts]
        self.d.line(q + [q[0]], fill=self.ink, width=3, joint="curve")

    def label(self, at: tuple[float, float], away_from: tuple[float, float], text: str, dist: float = 0.5, color=None):
        """Write text near `at`, pushed directly away from `away_from`, with its box
        clear of `at` by `dist` font heights whatever the direction."""
        (ax, ay), (cx, cy) = self.p(*at), self.p(*away_from)
        vx, vy = ax - cx, ay - cy
        n = math.hypot(vx, vy) or 1.0
        self._put(ax, ay, vx / n, vy / n, text, dist, color)

    def side_label(self, a: tuple[float, float], b: tuple[float, float], inside: tuple[float, float], text: str):
        """Label the side a-b at its midpoint, on the side away from `inside`."""
        (ax, ay), (bx, by), (ix, iy) = self.p(*a), self.p(*b), self.p(*inside)
        mx, my = (ax + bx) / 2, (ay + by) / 2
        nx, ny = -(by - ay), bx - ax
        n = math.hypot(nx, ny)
        nx, ny = nx / n, ny / n
        if nx * (ix - mx) + ny * (iy - my) > 0:
            nx, ny = -nx, -ny
        self._put(mx, my, nx, ny, text, 0.4, None)

    def _put(self, x: float, y: float, ux: float, uy: float, text: str, dist: float, color) -> None:
        # distance from the box centre to its edge along (ux, uy): the box's support function
        half_w, half_h = self.d.textlength(text, font=font(self.base)) / 2, self.base * 0.55
        off = self.base * dist + half_w * abs(ux) + half_h * abs(uy)
        self.d.text((x + ux * off, y + uy * off), text, font=font(self.base), fill=color or self.ink, anchor="mm")

    def angle_mark(self, v, a, b, text: str | None = None):
        (vx, vy), (ax, ay), (bx, by) = self.p(*v), self.p(*a), self.p(*b)
        t1 = math.degrees(math.atan2(ay - vy, ax - vx)) % 360
        t2 = math.degrees(math.atan2(by - vy, bx - vx)) % 360
        if (t2 - t1) % 360 > 180:
            t1, t2 = t2, t1
        r = self.base * 1.3
        self.d.arc([vx - r, vy - r, vx + r, vy + r], t1, t2 if t2 > t1 else t2 + 360, fill=self.ink, width=2)
        if text:
            mid = math.radians(t1 + ((t2 - t1) % 360) / 2)
            rr = r + self.base * 1.3
            self.d.text((vx + rr * math.cos(mid), vy + rr * math.sin(mid)), text, font=font(self.base), fill=self.ink, anchor="mm")


def geometry(rng: random.Random, index: int) -> tuple[Image.Image, str, str, str]:
    sub = ["right", "angles", "circle", "rect"][index % 4]
    unit = rng.choice(["cm", "m", "mm", "in"])
    r = [rng.choice(GEO_OPENERS)]
    if sub == "right":
        a, b, c = rng.choice(TRIPLES)
        k = rng.choice([1, 1, 2, 3]) if c < 30 else 1
        a, b, c = a * k, b * k, c * k
        if rng.random() < 0.5:
            a, b = b, a
        P, Q, R = (0.0, 0.0), (float(b), 0.0), (0.0, float(a))  # right angle at P
        f = Figure(rng, [P, Q, R])
        f.poly([P, Q, R])
        sq = f.base * 0.9
        px, py = f.p(*P)
        f.d.rectangle([px, py - sq, px + sq, py], outline=f.ink, width=2)
        cen = (b / 3, a / 3)
        for v, name in zip([P, Q, R], "CAB"):
            f.label(v, cen, name, 0.3)
        qtype = rng.choice(["hyp", "leg", "area"])
        if qtype == "leg":
            f.side_label(P, Q, cen, f"{b} {unit}")
            f.side_label(P, R, cen, "?")
            f.side_label(Q, R, cen, f"{c} {unit}")
            q = "Triangle ABC has a right angle at C. Find the length of the side marked '?'."
            r += [f"It's a right triangle with the right angle at C (there's the little square). The bottom leg CA is {b} {unit}, "
                  f"the hypotenuse AB, opposite the right angle, is {c} {unit}, and the vertical leg BC is unknown.",
                  "Pythagoras: leg1^2 + leg2^2 = hypotenuse^2, so the missing leg is sqrt(hyp^2 - known leg^2).",
                  f"{c}^2 = {c * c}, {b}^2 = {b * b}. {c * c} - {b * b} = {a * a}. sqrt({a * a}) = {a}, since {a} x {a} = {a * a}.",
                  rng.choice(DOUBLE_CHECKS) + f" {a}^2 + {b}^2 = {a * a} + {b * b} = {c * c} = {c}^2. Yes."
                  + (f" This is the {a // k}-{b // k}-{c // k} triple scaled by {k}." if k > 1 else ""),
                  f"The hypotenuse must be the longest side and {c} > {a}, so this is consistent.",
                  rng.choice(CONCLUDERS).format(a=f"{a} {unit}")]
            final = f"BC = sqrt({c}^2 - {b}^2) = sqrt({c * c} - {b * b}) = sqrt({a * a}) = **{a} {unit}**."
        else:
            f.side_label(P, Q, cen, f"{b} {unit}")
            f.side_label(P, R, cen, f"{a} {unit}")
            if qtype == "hyp":
                f.side_label(Q, R, cen, "?")
            if qtype == "hyp":
                q = rng.choice(["Find the length of the hypotenuse AB.", "How long is the side marked '?'?"])
                r += [f"Right triangle, right angle at C. The legs are CA = {b} {unit} and CB = {a} {unit}; AB is the hypotenuse.",
                      f"By Pythagoras, AB^2 = {b}^2 + {a}^2 = {b * b} + {a * a} = {c * c}.",
                      f"AB = sqrt({c * c}). Let me think: {c} x {c} = {c * c}, so AB = {c}.",
                      rng.choice(DOUBLE_CHECKS) + f" The hypotenuse should be longer than each leg but shorter than their sum: {max(a, b)} < {c} < {a + b}. Good."
                      + (f" It's also the {a // k}-{b // k}-{c // k} triple times {k}." if k > 1 else ""),
                      rng.choice(CONCLUDERS).format(a=f"{c} {unit}")]
                final = f"AB = sqrt({b}^2 + {a}^2) = sqrt({c * c}) = **{c} {unit}**."
            else:
                area = Fraction(a * b, 2)
                q = "What is the area of triangle ABC?"
                r += [f"It's a right triangle, the square mark is at C, so the legs CA = {b} {unit} and CB = {a} {unit} are perpendicular.",
                      "For a right triangle, I can use the legs as base and height: area = (1/2) x base x height.",
                      f"(1/2) x {b} x {a} = (1/2) x {a * b} = {fmt(area)}.",
                      rng.choice(DOUBLE_CHECKS) + f" The triangle is half of a {b} by {a} rectangle, whose area is {a * b}; half is {fmt(area)}. "
                      f"I don't need the hypotenuse (it would be {c}), the unmarked side is just a distractor.",
                      rng.choice(CONCLUDERS).format(a=f"{fmt(area)} square {unit}")]
                final = f"Area = (1/2) x {b} x {a} = **{fmt(area)} {unit}^2**."
    elif sub == "angles":
        while True:
            al, be = rng.randint(28, 105), rng.randint(28, 105)
            ga = 180 - al - be
            if ga >= 28:
                break
        A, B = (0.0, 0.0), (1.0, 0.0)
        t = math.sin(math.radians(be)) / math.sin(math.radians(al + be))
        C = (t * math.cos(math.radians(al)), t * math.sin(math.radians(al)))
        f = Figure(rng, [A, B, C])
        f.poly([A, B, C])
        cen = ((A[0] + B[0] + C[0]) / 3, (A[1] + B[1] + C[1]) / 3)
        for v, name in zip([A, B, C], "ABC"):
            f.label(v, cen, name, 0.3)
        f.angle_mark(A, B, C, f"{al}\u00b0")
        f.angle_mark(B, C, A, f"{be}\u00b0")
        f.angle_mark(C, A, B, "x")
        q = rng.choice(["Find the value of x in the triangle.", "What is the size of the angle marked x, in degrees?"])
        r += [f"It's a triangle ABC. The angle at A is marked {al} degrees, the angle at B is marked {be} degrees, and the angle at C is marked x.",
              "The interior angles of any triangle add up to 180 degrees.",
              f"So x = 180 - {al} - {be}. First {al} + {be} = {al + be}, then 180 - {al + be} = {ga}.",
              rng.choice(DOUBLE_CHECKS) + f" {al} + {be} + {ga} = {al + be + ga}. Yes, that's 180.",
              f"Does it look right? The angle at C {'looks like the largest' if ga == max(al, be, ga) else 'is not the largest' if ga < max(al, be) else 'looks comparable to the others'} in the drawing, "
              f"and {ga} {'is' if ga == max(al, be, ga) else 'is not'} the largest of {al}, {be} and {ga}. Consistent.",
              rng.choice(CONCLUDERS).format(a=f"x = {ga} degrees")]
        final = f"x = 180\u00b0 - {al}\u00b0 - {be}\u00b0 = **{ga}\u00b0**."
    elif sub == "circle":
        rad = rng.randint(2, 15)
        dia = rng.random() < 0.4
        f = Figure(rng, [(-1.0, -1.0), (1.0, 1.0)], extra=0.1)
        cx, cy = f.p(0, 0)
        R = f.s
        f.d.ellipse([cx - R, cy - R, cx + R, cy + R], outline=f.ink, width=3)
        f.d.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=f.ink)
        th = rng.uniform(-0.6, 0.6)
        ex, ey = math.cos(th), math.sin(th)
        if dia:
            f.d.line([f.p(-ex, -ey), f.p(ex, ey)], fill=f.ink, width=2)
            f.side_label((-ex, -ey), (0, 0), (ey, -ex), f"d = {2 * rad} {unit}")
        else:
            f.d.line([f.p(0, 0), f.p(ex, ey)], fill=f.ink, width=2)
            f.side_label((0, 0), (ex, ey), (ey, -ex), f"r = {rad} {unit}")
        f.label((0, 0), (0.3, 0.3), "O", 0.2)
        given = f"the diameter is marked {2 * rad} {unit}, so the radius is half of that, {rad} {unit}" if dia else f"the radius is marked {rad} {unit}"
        r += [f"There's a circle with centre O, and {given}."]
        if rng.random() < 0.5:
            q = "What is the area of the circle? Give the exact value and a decimal approximation."
            r += [f"Area = pi x r^2 = pi x {rad}^2 = {rad * rad}pi.",
                  f"Numerically, pi is about 3.14159, so {rad * rad} x 3.14159 = {rad * rad * math.pi:.2f}.",
                  rng.choice(DOUBLE_CHECKS) + f" A square of side 2r = {2 * rad} has area {4 * rad * rad}, and a circle fills pi/4, about 78.5%, of its bounding square: "
                  f"0.785 x {4 * rad * rad} = {0.785398 * 4 * rad * rad:.2f}. Matches."
                  + (" I must remember to halve the diameter first; using d instead of r would give four times too much." if dia else ""),
                  rng.choice(CONCLUDERS).format(a=f"{rad * rad}pi, about {rad * rad * math.pi:.2f} square {unit}")]
            final = f"A = pi r^2 = pi x {rad}^2 = **{rad * rad}\u03c0 {unit}^2 \u2248 {rad * rad * math.pi:.2f} {unit}^2**."
        else:
            q = "What is the circumference of the circle? Give the exact value and a decimal approximation."
            r += [f"Circumference = 2 x pi x r = 2 x pi x {rad} = {2 * rad}pi.",
                  f"Numerically {2 * rad} x 3.14159 = {2 * rad * math.pi:.2f}.",
                  rng.choice(DOUBLE_CHECKS) + f" Equivalently C = pi x d with d = {2 * rad}: pi x {2 * rad} = {2 * rad * math.pi:.2f}. Same thing. "
                  f"A bit more than three diameters, {3 * 2 * rad}, which makes sense.",
                  rng.choice(CONCLUDERS).format(a=f"{2 * rad}pi, about {2 * rad * math.pi:.2f} {unit}")]
            final = f"C = 2\u03c0r = 2\u03c0 x {rad} = **{2 * rad}\u03c0 {unit} \u2248 {2 * rad * math.pi:.2f} {unit}**."
    else:
        a, b, c = rng.choice(TRIPLES)
        k = rng.choice([1, 2]) if c < 30 else 1
        a, b, c = a * k, b * k, c * k
        if rng.random() < 0.5:
            a, b = b, a
        P, Q, R, S = (0.0, 0.0), (float(a), 0.0), (float(a), float(b)), (0.0, float(b))
        f = Figure(rng, [P, Q, R, S])
        f.poly([P, Q, R, S])
        cen = (a / 2, b / 2)
        for v, name in zip([P, Q, R, S], "ABCD"):
            f.label(v, cen, name, 0.3)
        f.side_label(P, Q, cen, f"{a} {unit}")
        f.side_label(Q, R, cen, f"{b} {unit}")
        qtype = rng.choice(["diag", "perim", "area"])
        if qtype == "diag":
            f.d.line([f.p(*P), f.p(*R)], fill=f.ink, width=2)
            px, py = f.p(a * 0.42, b * 0.42)
            f.d.text((px - f.base * 0.7, py - f.base * 0.7), "?", font=font(f.base), fill=f.ink, anchor="mm")
            q = "ABCD is a rectangle. How long is the diagonal AC?"
            r += [f"ABCD is a rectangle with AB = {a} {unit} along the bottom and BC = {b} {unit} on the right side. The diagonal AC is drawn and marked '?'.",
                  "The diagonal splits the rectangle into two right triangles, with the right angle at B, so AC is the hypotenuse.",
                  f"AC^2 = {a}^2 + {b}^2 = {a * a} + {b * b} = {c * c}, so AC = sqrt({c * c}) = {c}.",
                  rng.choice(DOUBLE_CHECKS) + f" {c} x {c} = {c * c}. And the diagonal must be longer than both sides ({c} > {max(a, b)}) but shorter than their sum ({a + b}).",
                  rng.choice(CONCLUDERS).format(a=f"{c} {unit}")]
            final = f"AC = sqrt({a}^2 + {b}^2) = sqrt({c * c}) = **{c} {unit}**."
        elif qtype == "perim":
            per = 2 * (a + b)
            q = "What is the perimeter of rectangle ABCD?"
            r += [f"Rectangle ABCD: the bottom side is {a} {unit} and the right side is {b} {unit}. Opposite sides of a rectangle are equal, so the top is also {a} and the left is also {b}.",
                  f"Perimeter = {a} + {b} + {a} + {b} = 2 x ({a} + {b}) = 2 x {a + b} = {per}.",
                  rng.choice(DOUBLE_CHECKS) + f" 2 x {a} = {2 * a}, 2 x {b} = {2 * b}, {2 * a} + {2 * b} = {per}. Same.",
                  rng.choice(CONCLUDERS).format(a=f"{per} {unit}")]
            final = f"P = 2 x ({a} + {b}) = **{per} {unit}**."
        else:
            q = "What is the area of rectangle ABCD?"
            r += [f"It's a rectangle with sides {a} {unit} and {b} {unit}.",
                  f"Area = length x width = {a} x {b}. Let me compute: {a} x {b} = {a * b}.",
                  rng.choice(DOUBLE_CHECKS) + f" Splitting it up: {a} x {b} = {a} x {b - 1} + {a} = {a * (b - 1)} + {a} = {a * b}. "
                  f"And {a * b} / {a} = {b}, so it's right.",
                  f"The units multiply too, so the area is in square {unit}.",
                  rng.choice(CONCLUDERS).format(a=f"{a * b} square {unit}")]
            final = f"Area = {a} x {b} = **{a * b} {unit}^2**."
    return f.img, q, " ".join(r), final


# --------------------------------------------------------------------------- tables

TABLE_THEMES = [
    ("Quarterly sales (units)", "Product", ["Lamps", "Chairs", "Desks", "Shelves", "Rugs", "Mirrors", "Sofas", "Beds", "Stools", "Tables", "Clocks", "Vases"], ["Q1", "Q2", "Q3", "Q4"], (10, 99), True),
    ("Test scores", "Student", NAMES, ["Math", "Science", "English", "History", "Art", "Music"], (40, 100), False),
    ("Rainfall by city (mm)", "City", TOWNS, MONTHS, (5, 120), True),
    ("Tickets sold", "Show", ["Hamlet", "Cats", "Annie", "Grease", "Chicago", "Wicked", "Rent", "Oliver", "Evita", "Hair"], DAYS[:5], (20, 250), True),
    ("Daily steps (hundreds)", "Person", NAMES, DAYS, (20, 150), True),
    ("Hours volunteered", "Volunteer", NAMES, ["Week 1", "Week 2", "Week 3", "Week 4", "Week 5"], (0, 25), True),
]


def table(rng: random.Random, index: int) -> tuple[Image.Image, str, str, str]:
    title, head, row_pool, col_pool, (lo, hi), ordered = rng.choice(TABLE_THEMES)
    nr = rng.randint(3, min(12, len(row_pool)))
    nc = rng.randint(2, min(6, len(col_pool)))
    rows = rng.sample(row_pool, nr)
    cols = in_order_subset(rng, col_pool, nc) if ordered else rng.sample(col_pool, nc)
    data = [[rng.randint(lo, hi) for _ in range(nc)] for _ in range(nr)]
    fs = rng.randint(13, 22)
    f = font(fs)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad = fs * rng.uniform(0.6, 1.4)
    cells = [[head] + cols] + [[rw] + [str(v) for v in dr] for rw, dr in zip(rows, data)]
    widths = [max(probe.textlength(cells[i][j], font=f) for i in range(nr + 1)) + 2 * pad for j in range(nc + 1)]
    rh = fs * rng.uniform(1.8, 2.4)
    m = fs * 1.5
    w = int(sum(widths) + 2 * m)
    h = int(rh * (nr + 1) + 2 * m + fs * 2)
    w, h = clamp_aspect(max(w, 300), h)
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    x0 = (w - sum(widths)) / 2
    y0 = m + fs * 2
    d.text((w / 2, m * 0.6), title, font=font(fs + 3), fill=BLACK, anchor="mt")
    shade = rng.choice([(225, 235, 250), (235, 235, 235), (250, 235, 215)])
    zebra = rng.random() < 0.5
    d.rectangle([x0, y0, x0 + sum(widths), y0 + rh], fill=shade)
    for i in range(nr + 1):
        if zebra and i % 2 == 0 and i:
            d.rectangle([x0, y0 + i * rh, x0 + sum(widths), y0 + (i + 1) * rh], fill=(246, 246, 246))
        x = x0
        for j in range(nc + 1):
            anchor, tx = ("lm", x + pad) if j == 0 else ("rm", x + widths[j] - pad)
            d.text((tx, y0 + (i + 0.5) * rh), cells[i][j], font=f, fill=BLACK, anchor=anchor)
            x += widths[j]
    for i in range(nr + 2):
        d.line([(x0, y0 + i * rh), (x0 + sum(widths), y0 + i * rh)], fill=(120, 120, 120), width=2 if i in (0, 1, nr + 1) else 1)
    x = x0
    for j in range(nc + 2):
        d.line([(x, y0), (x, y0 + (nr + 1) * rh)], fill=(120, 120, 120))
        x += widths[j] if j <= nc else 0

    r = [rng.choice(["Okay, let me read the table.", "Alright, there's a table here; let me understand its layout first.",
                     "Let me look at the table carefully.", "Okay, so this is a table of numbers."]),
         f"The title is \"{title}\". The first column is {head}, and the other columns are {listing(cols)}. There are {nr} rows of data: {listing(rows)}."]
    qtype = rng.choice(["row_total", "col_max", "col_total", "diff", "count"])
    if qtype == "row_total":
        i = rng.randrange(nr)
        s = sum(data[i])
        q = f"What is the total for {rows[i]} across all the columns?"
        r += [f"I need the row for {rows[i]}. Reading across: " + ", ".join(f"{c} = {v}" for c, v in zip(cols, data[i])) + ".",
              f"Adding: {running_sum(data[i])}.",
              rng.choice(DOUBLE_CHECKS) + f" Adding from the right: {running_sum(data[i][::-1])}. Both give {s}."
              + (f" And I made sure to stay on the {rows[i]} row and not drift to {rows[i - 1] if i else rows[i + 1] if nr > 1 else rows[i]}." if nr > 1 else ""),
              rng.choice(CONCLUDERS).format(a=str(s))]
        final = f"{rows[i]}: {' + '.join(map(str, data[i]))} = **{s}**."
    elif qtype == "col_total":
        j = rng.randrange(nc)
        colv = [row[j] for row in data]
        s = sum(colv)
        q = f"What is the sum of the {cols[j]} column?"
        r += [f"The {cols[j]} column, top to bottom: " + ", ".join(f"{rw} {v}" for rw, v in zip(rows, colv)) + ".",
              f"Running total: {running_sum(colv)}.",
              rng.choice(DOUBLE_CHECKS) + f" Bottom to top: {running_sum(colv[::-1])}. Both give {s}.",
              rng.choice(CONCLUDERS).format(a=str(s))]
        final = f"Sum of {cols[j]}: {' + '.join(map(str, colv))} = **{s}**."
    elif qtype == "diff":
        i1, i2 = rng.sample(range(nr), 2) if nr > 1 else (0, 0)
        j1, j2 = rng.randrange(nc), rng.randrange(nc)
        if (i1, j1) == (i2, j2):
            j2 = (j1 + 1) % nc
        v1, v2 = data[i1][j1], data[i2][j2]
        q = f"What is the difference between {rows[i1]}'s {cols[j1]} value and {rows[i2]}'s {cols[j2]} value?"
        r += [f"Two cells: row {rows[i1]}, column {cols[j1]} -> {v1}; row {rows[i2]}, column {cols[j2]} -> {v2}.",
              f"Difference: {max(v1, v2)} - {min(v1, v2)} = {abs(v1 - v2)}.",
              rng.choice(DOUBLE_CHECKS) + f" I'll re-trace the cells: {rows[i1]} is data row {i1 + 1}, {cols[j1]} is value column {j1 + 1}, giving {v1}; "
              f"{rows[i2]} is row {i2 + 1}, {cols[j2]} is column {j2 + 1}, giving {v2}. {min(v1, v2)} + {abs(v1 - v2)} = {max(v1, v2)}.",
              rng.choice(CONCLUDERS).format(a=str(abs(v1 - v2)))]
        final = f"{max(v1, v2)} - {min(v1, v2)} = **{abs(v1 - v2)}**."
    else:
        j = rng.randrange(nc)
        colv = [row[j] for row in data]
        if qtype == "col_max" and colv.count(max(colv)) == 1:
            k = colv.index(max(colv))
            q = f"Which {head.lower()} has the highest {cols[j]} value, and what is it?"
            r += [f"Looking down the {cols[j]} column: " + ", ".join(f"{rw} {v}" for rw, v in zip(rows, colv)) + ".",
                  f"The largest is {colv[k]}, for {rows[k]}.",
                  rng.choice(DOUBLE_CHECKS) + " Comparing each against it: " + ", ".join(f"{v} < {colv[k]}" for v in colv if v != colv[k]) + ". So it is the unique maximum.",
                  rng.choice(CONCLUDERS).format(a=f"{rows[k]} with {colv[k]}")]
            final = f"**{rows[k]}**, with {cols[j]} = **{colv[k]}**."
        else:
            t = rng.randint(lo, hi)
            while t in colv:
                t += 1
            over = [rw for rw, v in zip(rows, colv) if v > t]
            q = f"How many rows have a {cols[j]} value greater than {t}?"
            r += [f"Going down the {cols[j]} column and comparing with {t}:"]
            r += [f"{rw}: {v} {'>' if v > t else '<'} {t}." for rw, v in zip(rows, colv)]
            r += [f"Rows above {t}: {listing(over) if over else 'none'}. That's {len(over)}.",
                  rng.choice(DOUBLE_CHECKS) + f" No entry equals {t} exactly. {len(over)} above plus {nr - len(over)} below = {nr} rows. Good.",
                  rng.choice(CONCLUDERS).format(a=str(len(over)))]
            final = f"Rows with {cols[j]} > {t}: {listing(over) if over else 'none'} -> **{len(over)}**."
    return img, q, " ".join(r), final


# --------------------------------------------------------------------------- formulas

def draw_math(d: ImageDraw.ImageDraw | None, x: float, baseline: float, segs: list, size: int, ink=BLACK) -> float:
    """Lay out text, ('^', sup) and ('/', num, den) pieces on a baseline; returns the width.

    The bundled font has no superscript digits or fraction glyphs, so exponents
    and fractions are drawn as a small raised text and a stacked bar instead.
    """
    f, fs, ff = font(size), font(size * 0.6), font(size * 0.8)
    probe = d or ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x_start = x
    for seg in segs:
        if isinstance(seg, str):
            if d:
                d.text((x, baseline), seg, font=f, fill=ink, anchor="ls")
            x += probe.textlength(seg, font=f)
        elif seg[0] == "^":
            if d:
                d.text((x + 1, baseline - size * 0.42), seg[1], font=fs, fill=ink, anchor="ls")
            x += probe.textlength(seg[1], font=fs) + 2
        else:
            _, num, den = seg
            wd = max(probe.textlength(num, font=ff), probe.textlength(den, font=ff)) + size * 0.3
            if d:
                bar = baseline - size * 0.32
                d.line([(x, bar), (x + wd, bar)], fill=ink, width=max(1, size // 14))
                d.text((x + wd / 2, bar - size * 0.12), num, font=ff, fill=ink, anchor="ms")
                d.text((x + wd / 2, bar + size * 0.12), den, font=ff, fill=ink, anchor="mt")
            x += wd + size * 0.15
    return x - x_start


def poly(terms: list[tuple[int, int]], var: str = "x") -> tuple[list, str]:
    """[(coef, power)] -> (drawing segments, plain text with ^), e.g. x^2 - 5x + 6."""
    segs: list = []
    text = ""
    for coef, pw in terms:
        if coef == 0:
            continue
        sign = ("-" if coef < 0 else "") if not text else (" - " if coef < 0 else " + ")
        c = abs(coef)
        body = (str(c) if c != 1 or pw == 0 else "") + (var if pw else "")
        segs.append(sign + body)
        text += sign + body
        if pw > 1:
            segs.append(("^", str(pw)))
            text += f"^{pw}"
    return segs, text or "0"


def signed(v: int) -> str:
    return f"+ {v}" if v >= 0 else f"- {-v}"


def formula(rng: random.Random, index: int) -> tuple[Image.Image, str, str, str]:
    sub = ["linear", "quadratic", "evaluate", "fractions", "system", "twosided", "order"][index % 7]
    opener = rng.choice(["Okay, the image shows a math problem.", "Let me read the expression in the image first.",
                         "Alright, there's an equation written here.", "Okay, let me see what's written."])
    lines: list[list] = []
    if sub == "linear":
        x, a = rng.randint(-9, 12), rng.randint(2, 9)
        b = rng.choice([v for v in range(-20, 31) if v])
        c = a * x + b
        paren = rng.random() < 0.4 and b % a == 0 and b
        heading = "Solve for x:"
        if paren:
            e = b // a
            lines = [[f"{a}(x {signed(e)}) = {c}"]]
            shown = f"{a}(x {signed(e)}) = {c}"
            steps = [f"Divide both sides by {a}: x {signed(e)} = {c} / {a} = {c // a}.", f"Then x = {c // a} {signed(-e)} = {x}."]
        else:
            lines = [[f"{a}x {signed(b)} = {c}"]]
            shown = f"{a}x {signed(b)} = {c}"
            steps = [f"Move the constant: {a}x = {c} {signed(-b)} = {c - b}.", f"Divide by {a}: x = {c - b} / {a} = {x}."]
        q = "Solve the equation shown in the image."
        r = [opener, f"It says \"{heading}\" and the equation is {shown}.", *steps,
             rng.choice(DOUBLE_CHECKS) + f" Substituting x = {x} back: " + (f"{a}({x} {signed(e)}) = {a} x {x + e} = {a * (x + e)}" if paren else f"{a} x {x} {signed(b)} = {a * x} {signed(b)} = {a * x + b}")
             + f", and the right side is {c}. It checks out.",
             rng.choice(CONCLUDERS).format(a=f"x = {x}")]
        final = f"**x = {x}**"
    elif sub == "twosided":
        x = rng.randint(-8, 10)
        a, c2 = rng.sample(range(2, 10), 2)
        b = rng.randint(-15, 15)
        d_ = a * x + b - c2 * x
        heading = rng.choice(["Solve for x:", "Find x:"])
        s1, t1 = poly([(a, 1), (b, 0)])
        s2, t2 = poly([(c2, 1), (d_, 0)])
        lines = [s1 + [" = "] + s2]
        q = "Find the value of x that satisfies the equation in the image."
        r = [opener, f"The equation is {t1} = {t2}. There are x terms on both sides, so I'll collect them on one side.",
             f"Subtract {c2}x from both sides: {a - c2}x {signed(b)} = {d_}.",
             f"Subtract {b} from both sides: {a - c2}x = {d_} {signed(-b)} = {d_ - b}.",
             f"Divide by {a - c2}: x = {d_ - b} / {a - c2} = {x}.",
             rng.choice(DOUBLE_CHECKS) + f" Left side at x = {x}: {a} x {x} {signed(b)} = {a * x + b}. Right side: {c2} x {x} {signed(d_)} = {c2 * x + d_}. Equal, good.",
             rng.choice(CONCLUDERS).format(a=f"x = {x}")]
        final = f"**x = {x}**"
    elif sub == "quadratic":
        r1, r2 = rng.sample([v for v in range(-9, 10) if v], 2)
        p, c = -(r1 + r2), r1 * r2
        segs, txt = poly([(1, 2), (p, 1), (c, 0)])
        lines = [segs + [" = 0"]]
        heading = rng.choice(["Solve:", "Find all real solutions:", "Solve the quadratic equation:"])
        lo_, hi_ = sorted((r1, r2))
        q = "Solve the equation in the image."
        r = [opener, f"It's the quadratic {txt} = 0. The leading coefficient is 1, so I'll try to factor it.",
             f"I need two numbers whose product is {c} and whose sum is {p}.",
             f"Let me think about factor pairs of {c}... {-r1} and {-r2}: {-r1} x {-r2} = {r1 * r2} and {-r1} + {-r2} = {-(r1 + r2)}. That works.",
             f"So {txt} = (x {signed(-r1)})(x {signed(-r2)}), and the solutions are x = {r1} and x = {r2}.",
             rng.choice(DOUBLE_CHECKS) + f" Plug in x = {r1}: {r1 * r1} {signed(p * r1)} {signed(c)} = {r1 * r1 + p * r1 + c}. "
             f"Plug in x = {r2}: {r2 * r2} {signed(p * r2)} {signed(c)} = {r2 * r2 + p * r2 + c}. Both zero.",
             f"Also, by Vieta, the roots should sum to {-p} and multiply to {c}: {r1} + {r2} = {r1 + r2}, {r1} x {r2} = {r1 * r2}. Consistent.",
             rng.choice(CONCLUDERS).format(a=f"x = {lo_} or x = {hi_}")]
        final = f"{txt} = (x {signed(-lo_)})(x {signed(-hi_)}) = 0, so **x = {lo_} or x = {hi_}**."
    elif sub == "evaluate":
        a, b, c, k = rng.randint(1, 6), rng.randint(-9, 9), rng.randint(-12, 12), rng.randint(-5, 6)
        segs, txt = poly([(a, 2), (b, 1), (c, 0)])
        lines = [["f(x) = "] + segs, [f"Find f({k})."]]
        heading = rng.choice(["Evaluate:", "Function problem", "Exercise"])
        val = a * k * k + b * k + c
        q = "Compute the value asked for in the image."
        r = [opener, f"The function is f(x) = {txt}, and I need f({k}).",
             f"First the square: {k}^2 = {k * k}. Then {a} x {k * k} = {a * k * k}.",
             f"Next the linear term: {b} x {k} = {b * k}.",
             f"Add everything: {a * k * k} {signed(b * k)} {signed(c)} = {val}.",
             rng.choice(DOUBLE_CHECKS) + " I'll be careful with the signs" + (", since k is negative the square is still positive" if k < 0 else "")
             + f": {a}({k})^2 = {a * k * k}, {b}({k}) = {b * k}, constant {c}. Total {val}.",
             rng.choice(CONCLUDERS).format(a=f"f({k}) = {val}")]
        final = f"f({k}) = {a * k * k} {signed(b * k)} {signed(c)} = **{val}**."
    elif sub == "fractions":
        b, d2 = rng.sample(range(2, 13), 2)
        a, c = rng.randint(1, b * 2 - 1), rng.randint(1, d2 * 2 - 1)
        op = rng.choice(["+", "-"])
        res = Fraction(a, b) + Fraction(c, d2) if op == "+" else Fraction(a, b) - Fraction(c, d2)
        lines = [[("/", str(a), str(b)), f" {op} ", ("/", str(c), str(d2)), " = ?"]]
        heading = rng.choice(["Simplify:", "Compute:", "Work out the value:"])
        lcd = b * d2 // math.gcd(b, d2)
        n1, n2 = a * lcd // b, c * lcd // d2
        raw = n1 + n2 if op == "+" else n1 - n2
        q = "Calculate the expression in the image and give the answer as a fraction in lowest terms."
        r = [opener, f"It's {a}/{b} {op} {c}/{d2}. I need a common denominator.",
             f"The least common multiple of {b} and {d2} is {lcd}.",
             f"{a}/{b} = {n1}/{lcd} (multiplying top and bottom by {lcd // b}), and {c}/{d2} = {n2}/{lcd} (multiplying by {lcd // d2}).",
             f"So the result is ({n1} {op} {n2})/{lcd} = {raw}/{lcd}.",
             (f"Now simplify: gcd({abs(raw)}, {lcd}) = {math.gcd(abs(raw), lcd)}, so it reduces to {frac(res)}." if math.gcd(abs(raw), lcd) > 1 else "It is already in lowest terms."),
             rng.choice(DOUBLE_CHECKS) + f" In decimals: {a}/{b} is about {a / b:.4f}, {c}/{d2} is about {c / d2:.4f}, and {a / b:.4f} {op} {c / d2:.4f} = {float(res):.4f}, "
             f"while {frac(res)} = {float(res):.4f}. Matches.",
             rng.choice(CONCLUDERS).format(a=frac(res))]
        final = f"{a}/{b} {op} {c}/{d2} = {n1}/{lcd} {op} {n2}/{lcd} = **{frac(res)}**."
    elif sub == "system":
        while True:
            x, y = rng.randint(-5, 9), rng.randint(-5, 9)
            a1, b1, a2, b2 = (rng.randint(1, 6) for _ in range(4))
            if a1 * b2 - a2 * b1 != 0:
                break
        c1, c2 = a1 * x + b1 * y, a2 * x + b2 * y
        s1, t1 = poly([(a1, 1)], "x")
        s1b, t1b = poly([(b1, 1)], "y")
        s2, t2 = poly([(a2, 1)], "x")
        s2b, t2b = poly([(b2, 1)], "y")
        e1, e2 = f"{t1} + {t1b} = {c1}", f"{t2} + {t2b} = {c2}"
        lines = [["(1)   " + e1], ["(2)   " + e2]]
        heading = "Solve the system:"
        k_ = b1 * a2 - b2 * a1
        rhs = c1 * a2 - c2 * a1
        q = "Solve the system of equations shown in the image."
        r = [opener, f"Two equations: (1) {e1} and (2) {e2}. I'll eliminate x.",
             f"Multiply (1) by {a2}: {a1 * a2}x + {b1 * a2}y = {c1 * a2}. Multiply (2) by {a1}: {a2 * a1}x + {b2 * a1}y = {c2 * a1}.",
             f"Subtract the second from the first: ({b1 * a2} - {b2 * a1})y = {c1 * a2} - {c2 * a1}, so {k_}y = {rhs}, y = {rhs} / {k_} = {y}.",
             f"Back into (1): {a1}x + {b1} x {y} = {c1}, so {a1}x = {c1} {signed(-b1 * y)} = {c1 - b1 * y}, x = {x}.",
             rng.choice(DOUBLE_CHECKS) + f" (1): {a1} x {x} + {b1} x {y} = {a1 * x} + {b1 * y} = {c1}. (2): {a2} x {x} + {b2} x {y} = {a2 * x} + {b2 * y} = {c2}. Both hold.",
             rng.choice(CONCLUDERS).format(a=f"x = {x}, y = {y}")]
        final = f"**x = {x}, y = {y}**."
    else:
        a, b, c, d2 = rng.randint(2, 20), rng.randint(2, 6), rng.randint(3, 12), rng.randint(1, 9)
        if c <= d2:
            c, d2 = d2 + rng.randint(1, 4), c
        e = rng.randint(1, 9)
        val = a + b * (c - d2) ** 2 - e
        lines = [[f"{a} + {b} \u00b7 ({c} - {d2})", ("^", "2"), f" - {e}"]]
        heading = rng.choice(["Evaluate:", "Compute:"])
        q = "Evaluate the expression in the image."
        r = [opener, f"The expression is {a} + {b} * ({c} - {d2})^2 - {e}; the dot means multiplication.",
             "Order of operations: parentheses first, then the exponent, then multiplication, then addition and subtraction from left to right.",
             f"Parentheses: {c} - {d2} = {c - d2}. Exponent: {c - d2}^2 = {(c - d2) ** 2}. Multiplication: {b} x {(c - d2) ** 2} = {b * (c - d2) ** 2}.",
             f"Then {a} + {b * (c - d2) ** 2} = {a + b * (c - d2) ** 2}, and {a + b * (c - d2) ** 2} - {e} = {val}.",
             rng.choice(DOUBLE_CHECKS) + f" A common mistake would be to add {a} + {b} first, giving {(a + b) * (c - d2) ** 2 - e}, or to multiply before squaring, giving "
             f"{a + (b * (c - d2)) ** 2 - e}. Neither follows the rules. The correct value is {val}.",
             rng.choice(CONCLUDERS).format(a=str(val))]
        final = f"{a} + {b} x {c - d2}^2 - {e} = {a} + {b * (c - d2) ** 2} - {e} = **{val}**."

    size = rng.randint(26, 46)
    widths = [draw_math(None, 0, 0, ln, size) for ln in lines]
    m = rng.randint(30, 80)
    w = int(max(widths) + 2 * m + rng.randint(0, 200))
    h = int(size * 1.9 * (len(lines) + 1) + 2 * m * 0.6)
    w, h = clamp_aspect(max(w, 300), h)
    bg = rng.choice([WHITE, (252, 250, 242), (240, 246, 255), (255, 253, 230)])
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # ruled notebook paper
        for y in range(int(size * 1.2), h, int(size * 0.95)):
            d.line([(0, y), (w, y)], fill=(200, 215, 235))
    ink = rng.choice([BLACK, (20, 30, 110)])
    top = (h - size * 1.9 * (len(lines) + 1)) / 2
    d.text((m * 0.6, top + size * 0.9), heading, font=font(size * 0.7), fill=(90, 90, 90), anchor="ls")
    for i, (ln, wd) in enumerate(zip(lines, widths)):
        draw_math(d, (w - wd) / 2, top + size * 1.9 * (i + 1) + size, ln, size, ink)
    return img, q, " ".join(r), final


# --------------------------------------------------------------------------- documents

FILLER = [
    "The report was prepared by the town's volunteer committee.",
    "Opening hours remain the same as last year.",
    "Several residents sent letters praising the staff.",
    "Weather conditions were mostly mild during the period.",
    "A full breakdown is available at the front desk.",
    "Next month's figures will be published in the spring newsletter.",
    "Parking near the entrance was limited because of roadworks.",
    "The committee thanks everyone who took part.",
]


def paragraph_doc(rng: random.Random) -> tuple[str, list[str], str, list[str], str]:
    town = rng.choice(TOWNS)
    t = rng.randrange(6)
    fill = rng.sample(FILLER, 3)
    if t == 0:
        m = rng.randint(0, 9)
        a, b, c = (rng.randint(120, 990) for _ in range(3))
        ms = MONTH_NAMES[m:m + 3]
        title = f"{town} Library - Quarterly Note"
        text = [f"The {town} Public Library welcomed {a} visitors in {ms[0]}. {fill[0]} In {ms[1]} the number of visitors was {b}, "
                f"and in {ms[2]} it reached {c}. The children's reading room, opened in {2010 + rng.randint(0, 12)}, was the most popular area. {fill[1]}"]
        q = f"According to the text, how many visitors did the library have in total over {ms[0]}, {ms[1]} and {ms[2]}?"
        s = a + b + c
        r = [f"The text gives three monthly visitor counts: {ms[0]} {a}, {ms[1]} {b}, {ms[2]} {c}. The year the reading room opened is a distractor.",
             f"{a} + {b} = {a + b}, and {a + b} + {c} = {s}.",
             rng.choice(DOUBLE_CHECKS) + f" {c} + {b} = {b + c}, {b + c} + {a} = {s}. Same total."]
        return title, text, q, r, f"{a} + {b} + {c} = **{s} visitors**."
    if t == 1:
        price = rng.choice([150, 175, 220, 240, 275, 320, 350, 425])
        sat = rng.randint(40, 160)
        fewer = rng.randint(5, sat - 10)
        sun = sat - fewer
        name = rng.choice(NAMES)
        title = f"{name}'s Bakery"
        text = [f"{name}'s bakery on {town} High Street sells its sourdough loaves for {money(price)} each. On Saturday the bakery sold {sat} loaves. "
                f"{fill[0]} On Sunday it sold {fewer} fewer loaves than on Saturday. Croissants, a newer product, are baked in batches of {rng.choice([12, 24, 36])}."]
        q = "How much money did the bakery take in from sourdough loaves on Sunday?"
        rev = sun * price
        r = [f"The price is {money(price)} per loaf. Sunday's count isn't given directly: it's {fewer} fewer than Saturday's {sat}, so {sat} - {fewer} = {sun} loaves.",
             f"Revenue = {sun} x {money(price)}. Working in cents: {sun} x {price} = {rev} cents, which is {money(rev)}.",
             rng.choice(DOUBLE_CHECKS) + f" {sun} x {price // 100} dollars = {sun * (price // 100)} dollars, plus {sun} x {price % 100} cents = {sun * (price % 100)} cents "
             f"= {money(sun * (price % 100))}. Total {money(rev)}. The croissant batch size is irrelevant."]
        return title, text, q, r, f"Sunday: {sat} - {fewer} = {sun} loaves; {sun} x {money(price)} = **{money(rev)}**."
    if t == 2:
        students, teachers, cap = rng.randint(60, 380), rng.randint(3, 16), rng.choice([30, 40, 45, 50, 52, 60])
        title = f"{town} School Trip"
        text = [f"This spring, {students} students from {town} School will visit the science museum, accompanied by {teachers} teachers. "
                f"{fill[0]} The buses we hire each seat {cap} people, and every student and teacher needs a seat. Lunch will be served at 12:30. {fill[1]}"]
        total = students + teachers
        buses = -(-total // cap)
        q = "How many buses are needed for the trip?"
        r = [f"Everyone needs a seat: {students} students + {teachers} teachers = {total} people.",
             f"Each bus seats {cap}. {total} / {cap} = {total / cap:.3f}...",
             f"Buses come in whole numbers and I can't leave anyone behind, so I round up: {buses}." if total % cap else f"That divides exactly, so {buses} buses.",
             rng.choice(DOUBLE_CHECKS) + f" {buses} x {cap} = {buses * cap} >= {total}" + (f", while {buses - 1} x {cap} = {(buses - 1) * cap} < {total}, so one fewer bus wouldn't do." if buses > 1 else ".")]
        return title, text, q, r, f"{total} people / {cap} seats per bus -> **{buses} buses**."
    if t == 3:
        s = rng.choice([2, 4, 6, 8])
        t2 = rng.choice([v for v in (3, 5, 9, 10, 12, 14, 18) if v != s])
        g = s * rng.randint(20, 90)
        eggs = rng.randint(1, 4)
        title = rng.choice(["Grandma's Pancakes", "Simple Bread Rolls", "Lemon Cake"])
        text = [f"This recipe makes {s} servings. You will need {g} g of flour, {eggs} eggs and a pinch of salt. {fill[0]}",
                f"Mix the dry ingredients first, then add the eggs one at a time. Bake or fry for about {rng.randint(8, 35)} minutes."]
        need = Fraction(g * t2, s)
        q = f"How many grams of flour are needed to make {t2} servings?"
        r = [f"The recipe is for {s} servings with {g} g of flour. Per serving that's {g} / {s} = {fmt(Fraction(g, s))} g.",
             f"For {t2} servings: {fmt(Fraction(g, s))} x {t2} = {fmt(need)} g.",
             rng.choice(DOUBLE_CHECKS) + f" Scaling factor {t2}/{s} = {fmt(Fraction(t2, s))}; {g} x {fmt(Fraction(t2, s))} = {fmt(need)}. Same. The cooking time and eggs don't matter here."]
        return title, text, q, r, f"{g} g x {t2}/{s} = **{fmt(need)} g** of flour."
    if t == 4:
        hh, mm = rng.randint(5, 16), rng.choice(range(0, 60, 5))
        dh, dm = rng.randint(1, 6), rng.choice(range(5, 60, 5))
        arr = hh * 60 + mm + dh * 60 + dm
        title = f"Rail Notice - {town}"
        text = [f"Passengers please note: the express service to the coast departs {town} at {hh:02d}:{mm:02d} from platform {rng.randint(1, 9)}. "
                f"{fill[0]} The journey takes {dh} hour{'s' if dh > 1 else ''} and {dm} minutes, with a short stop at the junction. Tickets cost {money(rng.randint(1200, 6000))}."]
        q = "At what time does the express train arrive at the coast?"
        r = [f"Departure {hh:02d}:{mm:02d}, journey {dh} h {dm} min. The platform and price are distractors.",
             f"Add the hours first: {hh:02d}:{mm:02d} + {dh} h = {hh + dh:02d}:{mm:02d}.",
             f"Then add {dm} minutes: {mm} + {dm} = {mm + dm}" + (f", which is over 60, so that's 1 hour and {mm + dm - 60} minutes" if mm + dm >= 60 else "") + f". Arrival {arr // 60:02d}:{arr % 60:02d}.",
             rng.choice(DOUBLE_CHECKS) + f" In minutes since midnight: {hh * 60 + mm} + {dh * 60 + dm} = {arr}; {arr} / 60 = {arr // 60} remainder {arr % 60}. So {arr // 60:02d}:{arr % 60:02d}."]
        return title, text, q, r, f"{hh:02d}:{mm:02d} + {dh} h {dm} min = **{arr // 60:02d}:{arr % 60:02d}**."
    goal = rng.choice([5000, 8000, 10000, 12000, 15000])
    parts = [rng.randint(500, goal // 4) for _ in range(3)]
    groups = rng.sample(["the choir", "the football club", "the school", "local shops", "the book club", "a bake sale"], 3)
    title = f"{town} Playground Appeal"
    text = [f"The {town} playground appeal aims to raise ${goal}. So far {groups[0]} has raised ${parts[0]}, {groups[1]} ${parts[1]} "
            f"and {groups[2]} ${parts[2]}. {fill[0]} The new swings will be installed by a team of {rng.randint(3, 9)} volunteers. {fill[1]}"]
    s = sum(parts)
    q = "How much more money does the appeal still need to reach its goal?"
    r = [f"Goal ${goal}. Raised so far: ${parts[0]} + ${parts[1]} + ${parts[2]}.",
         f"{running_sum(parts)}. So ${s} has been raised.",
         f"Still needed: {goal} - {s} = {goal - s}.",
         rng.choice(DOUBLE_CHECKS) + f" {s} + {goal - s} = {goal}. Yes. The number of volunteers is not relevant."]
    return title, text, q, r, f"${goal} - (${parts[0]} + ${parts[1]} + ${parts[2]}) = ${goal} - ${s} = **${goal - s}**."


RECEIPT_ITEMS = [("Milk", 89, 249), ("Bread", 120, 399), ("Eggs (12)", 210, 450), ("Apples 1kg", 180, 420), ("Coffee", 450, 1299),
                 ("Cheese", 280, 690), ("Rice 2kg", 250, 520), ("Pasta", 95, 240), ("Tomatoes", 130, 380), ("Yogurt", 60, 199),
                 ("Butter", 190, 399), ("Orange juice", 199, 449), ("Chocolate", 99, 350), ("Tea", 220, 560), ("Soap", 110, 330)]


def document(rng: random.Random, index: int) -> tuple[Image.Image, str, str, str]:
    if index % 2:
        return receipt(rng)
    title, paras, q, steps, final = paragraph_doc(rng)
    fs = rng.randint(14, 22)
    tw = rng.randint(320, 980)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = [ln for p in paras for ln in wrap(probe, p, font(fs), tw) + [""]][:-1]
    m = rng.randint(25, 60)
    lh = fs * rng.uniform(1.35, 1.7)
    w, h = clamp_aspect(int(tw + 2 * m), int(2 * m + fs * 2.5 + lh * len(lines)))
    bg = rng.choice([WHITE, (250, 247, 238), (244, 244, 244)])
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    x0 = (w - tw) / 2
    y = m
    d.text((x0, y), title, font=font(fs + 6), fill=BLACK, anchor="lt")
    y += fs * 2.5
    for ln in lines:
        d.text((x0, y), ln, font=font(fs), fill=(40, 40, 40), anchor="lt")
        y += lh
    r = [rng.choice(["Okay, the image is a short piece of text. Let me read it carefully.",
                     "Alright, this is a document; I'll read the whole thing before answering.",
                     "Let me read the text in the image first."]),
         f"The heading says \"{title}\".", *steps,
         "I'll just re-read the relevant sentence to make sure I took the right numbers, since there are other numbers in the text that don't matter.",
         rng.choice(CONCLUDERS).format(a=final.split("**")[1])]
    return img, q, " ".join(r), final


def receipt(rng: random.Random) -> tuple[Image.Image, str, str, str]:
    n = rng.randint(4, 14)
    items = []
    for name, lo, hi in rng.sample(RECEIPT_ITEMS, n):
        items.append((name, rng.randint(1, 4), rng.randint(lo, hi)))
    store = rng.choice(["FRESHMART", "CORNER GROCER", "VALUE FOODS", "GREEN BASKET", "CITY MARKET"])
    fs = rng.randint(14, 20)
    w = rng.randint(300, 400)
    lh = fs * 1.6
    h = int(fs * 14 + (lh + fs * 0.4) * n)
    w, h = clamp_aspect(w, h)
    img = Image.new("RGB", (w, h), (250, 250, 246))
    d = ImageDraw.Draw(img)
    m = fs * 1.2
    d.text((w / 2, m), store, font=font(fs + 6), fill=BLACK, anchor="mt")
    day, mon = rng.randint(1, 28), rng.randint(1, 12)
    d.text((w / 2, m + fs * 2.2), f"{day:02d}/{mon:02d}/20{rng.randint(18, 24)}  {rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}",
           font=font(fs - 2), fill=(80, 80, 80), anchor="mt")
    y = m + fs * 4.2
    d.line([(m, y), (w - m, y)], fill=(120, 120, 120))
    y += fs * 0.8
    for name, qty, cents in items:
        d.text((m, y), f"{qty} x {name}", font=font(fs), fill=BLACK, anchor="lt")
        d.text((w - m, y), money(qty * cents), font=font(fs), fill=BLACK, anchor="rt")
        d.text((m + fs, y + fs * 1.0), f"@ {money(cents)}", font=font(fs - 4), fill=(110, 110, 110), anchor="lt")
        y += lh + fs * 0.4
    d.line([(m, y), (w - m, y)], fill=(120, 120, 120))
    d.text((m, y + fs * 0.6), f"{sum(q for _, q, _ in items)} articles", font=font(fs - 2), fill=(80, 80, 80), anchor="lt")
    d.text((w / 2, y + fs * 2.2), "THANK YOU!", font=font(fs), fill=BLACK, anchor="mt")
    x, y = m, y + fs * 4
    while x < w - m - 4:  # a barcode: thin and thick bars from the receipt's own rng
        bw = rng.choice([1, 1, 2, 3])
        d.rectangle([x, y, x + bw - 1, y + fs * 2.5], fill=BLACK)
        x += bw + rng.choice([1, 2, 3])
    img = img.crop((0, 0, w, min(h, int(y + fs * 3.5))))
    w, h = clamp_aspect(*img.size)
    if (w, h) != img.size:
        padded = Image.new("RGB", (w, h), (250, 250, 246))
        padded.paste(img, ((w - img.width) // 2, 0))
        img = padded

    lines = [qty * c for _, qty, c in items]
    total = sum(lines)
    r = [rng.choice(["Okay, this is a shop receipt.", "Alright, the image is a till receipt from " + store.title() + ".", "Let me read this receipt line by line."]),
         f"It lists {n} items, each with a quantity, a unit price (the small '@' line) and a line total on the right:"]
    r += [f"{qty} x {name} at {money(c)} = {money(qty * c)}." for name, qty, c in items]
    r.append("Let me verify one or two line totals so I trust the printed numbers: "
             + "; ".join(f"{qty} x {c} cents = {qty * c} cents" for _, qty, c in items[:2]) + ". Good.")
    qtype = rng.choice(["total", "change", "priciest"])
    if qtype == "priciest":
        best = max(range(n), key=lambda k: (items[k][2], -k))
        if [c for _, _, c in items].count(items[best][2]) > 1:
            qtype = "total"
        else:
            name, qty, c = items[best]
            q = "Which item on the receipt has the highest unit price, and what is that price?"
            r += ["Comparing unit prices, not line totals: " + ", ".join(f"{nm} {money(cc)}" for nm, _, cc in items) + ".",
                  f"The highest unit price is {money(c)}, for {name}.",
                  rng.choice(DOUBLE_CHECKS) + " The highest line total is "
                  + f"{money(max(lines))} ({items[lines.index(max(lines))][0]}), which " + ("is the same item." if lines.index(max(lines)) == best else "is a different item, because quantities differ, so I must not confuse the two."),
                  rng.choice(CONCLUDERS).format(a=f"{name} at {money(c)}")]
            final = f"**{name}**, at **{money(c)}** per unit."
            return img, q, " ".join(r), final
    r.append(f"Now the sum of the line totals, in cents to avoid rounding errors: {running_sum(lines)}. That's {money(total)}.")
    if qtype == "change":
        paid = (total // 1000 + 1 + rng.randint(0, 2)) * 1000
        q = f"The customer paid with {money(paid)}. How much change should they get?"
        ch = paid - total
        r += [f"Change = {money(paid)} - {money(total)} = {paid} - {total} cents = {ch} cents = {money(ch)}.",
              rng.choice(DOUBLE_CHECKS) + f" {money(total)} + {money(ch)}: {total} + {ch} = {paid} cents. Correct.",
              rng.choice(CONCLUDERS).format(a=money(ch))]
        final = f"Total {money(total)}; change from {money(paid)} is **{money(ch)}**."
    else:
        q = rng.choice(["What is the total amount of this receipt?", "The total is missing from the receipt. What should it be?"])
        r += [rng.choice(DOUBLE_CHECKS) + f" Adding in reverse: {running_sum(lines[::-1])}. Again {total} cents.",
              rng.choice(CONCLUDERS).format(a=money(total))]
        final = f"Sum of the line totals: **{money(total)}**."
    return img, q, " ".join(r), final


# --------------------------------------------------------------------------- scenes

def scene(rng: random.Random, index: int, seed: int) -> tuple[Image.Image, str, str, str]:
    w = rng.randint(440, 900)
    h = int(w / rng.uniform(1.25, 2.6))
    hz = int(h * rng.uniform(0.5, 0.62))  # horizon
    yy = np.arange(h, dtype=np.float32)[:, None]
    top, low = np.array(rng.choice([(70, 130, 210), (40, 90, 180), (110, 160, 220)]), np.float32), np.array((200, 225, 245), np.float32)
    g1, g2 = np.array(rng.choice([(90, 160, 70), (120, 170, 80), (200, 180, 120)]), np.float32), np.array((50, 110, 40), np.float32)
    t_sky = np.clip(yy / hz, 0, 1)[..., None]
    t_gnd = np.clip((yy - hz) / (h - hz), 0, 1)[..., None]
    arr = np.where(yy[..., None] < hz, top * (1 - t_sky) + low * t_sky, g1 * (1 - t_gnd) + g2 * t_gnd)
    arr = np.broadcast_to(arr, (h, w, 3)).copy()
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)

    sun_left = rng.random() < 0.5
    sr = h * 0.08
    sx = w * (0.1 if sun_left else 0.9)
    d.ellipse([sx - sr, h * 0.16 - sr, sx + sr, h * 0.16 + sr], fill=(255, 220, 60))
    n_clouds = rng.randint(0, 3)
    cloud_xs = [w * (0.3 + 0.5 * (i + 0.5) / 3) if sun_left else w * (0.1 + 0.5 * (i + 0.5) / 3) for i in range(3)]
    for cx in rng.sample(cloud_xs, n_clouds):
        cy = h * rng.uniform(0.1, 0.3)
        for dx, rr in ((-0.035, 0.03), (0.0, 0.045), (0.035, 0.03)):  # clouds stay apart
            d.ellipse([cx + dx * w - rr * w, cy - rr * w * 0.6, cx + dx * w + rr * w, cy + rr * w * 0.6], fill=(250, 250, 252))
    n_houses = rng.randint(1, 3)
    n_trees = rng.randint(0, max(0, min(5, w // 110 - n_houses)))  # keep houses big enough to count windows
    objs = ["house"] * n_houses + ["tree"] * n_trees
    rng.shuffle(objs)
    slot = w / len(objs)
    windows = []
    for i, kind in enumerate(objs):
        cx = slot * (i + 0.5)
        base_y = hz + (h - hz) * rng.uniform(0.35, 0.6)
        if kind == "house":
            hw = min(slot * 0.38, h * 0.22)
            hh = hw * rng.uniform(0.9, 1.3)
            wall = rng.choice([(230, 200, 160), (240, 240, 230), (200, 90, 70), (170, 190, 210)])
            d.rectangle([cx - hw, base_y - hh, cx + hw, base_y], fill=wall, outline=(60, 40, 30), width=2)
            d.polygon([(cx - hw * 1.15, base_y - hh), (cx + hw * 1.15, base_y - hh), (cx, base_y - hh - hw * 0.8)], fill=rng.choice([(150, 40, 30), (90, 60, 50), (60, 60, 80)]))
            d.rectangle([cx - hw * 0.18, base_y - hh * 0.45, cx + hw * 0.18, base_y], fill=(100, 60, 30))
            nw = rng.randint(1, 4)
            windows.append(nw)
            spots = [(-0.6, 0.72), (0.6, 0.72), (-0.6, 0.38), (0.6, 0.38)][:nw]
            for fx, fy in spots:
                wx, wy = cx + fx * hw, base_y - fy * hh
                s = hw * 0.17
                d.rectangle([wx - s, wy - s, wx + s, wy + s], fill=(170, 210, 240), outline=(60, 40, 30), width=2)
        else:
            th = h * rng.uniform(0.14, 0.22)
            d.rectangle([cx - th * 0.08, base_y - th, cx + th * 0.08, base_y], fill=(110, 70, 35))
            crown = rng.choice([(40, 120, 40), (60, 140, 50), (30, 100, 50)])
            if rng.random() < 0.5:
                cr = min(th * 0.45, slot * 0.4)
                d.ellipse([cx - cr, base_y - th - cr * 1.2, cx + cr, base_y - th + cr * 0.8], fill=crown)
            else:
                cr = min(th * 0.4, slot * 0.4)
                d.polygon([(cx - cr, base_y - th * 0.6), (cx + cr, base_y - th * 0.6), (cx, base_y - th * 1.6)], fill=crown)
    # Photo-like grain: brightness noise drawn at 1/4 size, smoothed up and rounded
    # to steps of 3, weaker in the sky.  Per-pixel colour noise would look similar
    # but makes each PNG 4-5 times bigger, and the whole folder must stay small.
    nrng = np.random.default_rng(seed)
    small = nrng.normal(0, 5, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
    noise = np.round(np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR)) / 3) * 3
    noise *= np.where(np.arange(h) < hz, 0.5, 1.0)[:, None]
    img = Image.fromarray(np.clip(np.asarray(img, np.float32) + noise[..., None], 0, 255).astype(np.uint8))

    order = ", ".join(objs)
    r = [rng.choice(["Okay, this looks like a simple outdoor scene.", "Alright, the picture shows a landscape.", "Let me describe what I see in this picture first."]),
         f"There's a {'deep ' if top[2] < 200 else ''}blue sky fading lighter toward the horizon, {'green' if g1[0] < 150 else 'sandy'} ground below, and the sun in the upper {'left' if sun_left else 'right'}.",
         f"{'There are ' + str(n_clouds) + ' white clouds' if n_clouds > 1 else 'There is one cloud' if n_clouds == 1 else 'There are no clouds'} in the sky.",
         f"Along the ground, going from left to right, I see: {order}."]
    qtype = rng.choice(["trees", "houses", "windows", "sun", "clouds", "more"])
    if qtype == "trees":
        q = "How many trees are in the picture?"
        r += [f"Counting only the trees in that left-to-right list: " + ", ".join(f"{k + 1}" for k in range(n_trees)) + f"... so {n_trees}." if n_trees else "There are no trees at all, only houses.",
              rng.choice(DOUBLE_CHECKS) + f" The row has {len(objs)} objects; {n_houses} of them are houses, so {len(objs)} - {n_houses} = {n_trees} are trees. "
              "Both round and pointed crowns count as trees.",
              rng.choice(CONCLUDERS).format(a=str(n_trees))]
        final = f"There {'is' if n_trees == 1 else 'are'} **{n_trees}** tree{'s' if n_trees != 1 else ''}."
    elif qtype == "houses":
        q = "How many houses can you see?"
        r += [f"Houses are the shapes with walls, a triangular roof and a door. In the list there are {n_houses}.",
              rng.choice(DOUBLE_CHECKS) + f" Total objects on the ground {len(objs)}, trees {n_trees}, so houses = {len(objs)} - {n_trees} = {n_houses}.",
              rng.choice(CONCLUDERS).format(a=str(n_houses))]
        final = f"**{n_houses}** house{'s' if n_houses != 1 else ''}."
    elif qtype == "windows":
        tw_ = sum(windows)
        q = "How many windows are there on all the houses together?"
        r += [f"There are {n_houses} house{'s' if n_houses > 1 else ''}. Windows are the light blue squares; doors are the brown rectangles and don't count.",
              *(f"The {ordinal(k + 1)} house from the left has {nw} window{'s' if nw > 1 else ''}." for k, nw in enumerate(windows)),
              f"Total: {' + '.join(map(str, windows))} = {tw_}.",
              rng.choice(DOUBLE_CHECKS) + " I'll recount each house's windows row by row: the upper row first, then the lower row. The counts are the same.",
              rng.choice(CONCLUDERS).format(a=str(tw_))]
        final = f"{' + '.join(map(str, windows))} = **{tw_}** windows."
    elif qtype == "sun":
        side = "left" if sun_left else "right"
        q = "Is the sun on the left or the right side of the picture?"
        r += [f"The yellow disc in the sky is at about {10 if sun_left else 90}% of the width from the left edge, near the top.",
              rng.choice(DOUBLE_CHECKS) + f" Left and right are from the viewer's point of view; the sun is {'near the left edge' if sun_left else 'near the right edge'}, "
              f"well {'left' if sun_left else 'right'} of the middle of the picture, and there is no second sun or lamp to confuse it with.",
              rng.choice(CONCLUDERS).format(a=side)]
        final = f"The sun is on the **{side}** side."
    elif qtype == "clouds":
        q = "How many clouds are in the sky?"
        r += [f"Each cloud is a cluster of three overlapping white puffs, so I must count clusters, not puffs. I count {n_clouds}.",
              rng.choice(DOUBLE_CHECKS) + f" Puffs: {3 * n_clouds}, in groups of three, so {n_clouds} clouds. The sun is yellow and not a cloud.",
              rng.choice(CONCLUDERS).format(a=str(n_clouds))]
        final = f"**{n_clouds}** cloud{'s' if n_clouds != 1 else ''}."
    else:
        q = "Are there more trees or more houses, and by how many?"
        diff = n_trees - n_houses
        verdict = "more trees" if diff > 0 else "more houses" if diff < 0 else "the same number"
        r += [f"Trees: {n_trees}. Houses: {n_houses}.",
              f"{max(n_trees, n_houses)} - {min(n_trees, n_houses)} = {abs(diff)}, so there are {verdict}" + (f", by {abs(diff)}." if diff else "."),
              rng.choice(DOUBLE_CHECKS) + f" {n_trees} + {n_houses} = {len(objs)}, the number of objects along the ground. Consistent.",
              rng.choice(CONCLUDERS).format(a=verdict + (f" by {abs(diff)}" if diff else ""))]
        final = f"{n_trees} trees vs {n_houses} houses: **{verdict}**" + (f" (by **{abs(diff)}**)." if diff else ".")
    return img, q, " ".join(r), final


# --------------------------------------------------------------------------- text-only samples

TEXT_OPENERS = [
    "Okay, let me work through this carefully.",
    "Alright, let's see what the problem is asking.",
    "Hmm, let me read the problem again and pick out the numbers.",
    "Okay, so I need to figure this out step by step.",
    "Let me think about this.",
]


def dec(x: Fraction) -> str:
    """Exact decimal for a terminating fraction (3/8 -> 0.375), else 4 significant places."""
    for k in range(7):
        if (x * 10 ** k).denominator == 1:
            v = x * 10 ** k
            sign, v = ("-" if v < 0 else ""), abs(v.numerator)
            whole, part = divmod(v, 10 ** k)
            return f"{sign}{whole}" + (f".{part:0{k}d}" if k else "")
    return f"{float(x):.4f}"


def factorize(n: int) -> str:
    out, p = [], 2
    while n > 1:
        e = 0
        while n % p == 0:
            n, e = n // p, e + 1
        if e:
            out.append(f"{p}^{e}" if e > 1 else str(p))
        p += 1
    return " x ".join(out)


def math_problem(rng: random.Random, k: int) -> tuple[str, list[str], str]:
    t = k % 9
    if t == 0:
        v1, v2 = rng.sample(range(40, 125, 5), 2)
        t1, t2 = rng.randint(1, 4), rng.randint(1, 3)
        d1, d2 = v1 * t1, v2 * t2
        avg = Fraction(d1 + d2, t1 + t2)
        q = f"A car travels {d1} km at {v1} km/h and then another {d2} km at {v2} km/h. What is its average speed for the whole trip?"
        r = [f"Average speed is total distance divided by total time, not the average of the two speeds.",
             f"Time for the first part: {d1} / {v1} = {t1} h. Time for the second part: {d2} / {v2} = {t2} h.",
             f"Total distance {d1} + {d2} = {d1 + d2} km, total time {t1} + {t2} = {t1 + t2} h.",
             f"Average speed = {d1 + d2} / {t1 + t2} = {frac(avg)}" + ("" if avg.denominator == 1 else f", about {float(avg):.2f}") + " km/h.",
             f"Wait, let me compare with the naive mean ({v1} + {v2}) / 2 = {fmt(Fraction(v1 + v2, 2))}. "
             + ("It happens to match here because the two legs take the same time." if t1 == t2 else "That's different, because the car spends more time at one of the speeds, so that speed gets more weight."),
             rng.choice(DOUBLE_CHECKS) + f" {fmt(avg)} x {t1 + t2} = {fmt(avg * (t1 + t2))} km, which is the total distance."]
        ans = f"{frac(avg)} km/h" if avg.denominator == 1 else f"{frac(avg)} km/h (about {float(avg):.2f} km/h)"
        return q, r, ans
    if t == 1:
        while True:
            price, disc, tax = rng.randint(20, 400), rng.choice([10, 15, 20, 25, 30, 40]), rng.choice([5, 8, 10, 20])
            if price * (100 - disc) * (100 + tax) % 100 == 0:
                break
        after = Fraction(price * (100 - disc), 100)
        final = after * Fraction(100 + tax, 100)
        cents = int(final * 100)
        q = f"A jacket costs ${price}. It is on sale for {disc}% off, and then a {tax}% sales tax is added to the sale price. How much does the customer pay?"
        r = [f"The order matters: the discount comes first, then tax on the discounted price.",
             f"Discount: {disc}% of {price} = {price} x {disc} / 100 = {dec(Fraction(price * disc, 100))}. Sale price: {price} - {dec(Fraction(price * disc, 100))} = {dec(after)}.",
             f"Tax: {tax}% of {dec(after)} = {dec(after * tax / 100)}. Final: {dec(after)} + {dec(after * tax / 100)} = {dec(final)}.",
             rng.choice(DOUBLE_CHECKS) + f" Using multipliers: {price} x {dec(Fraction(100 - disc, 100))} x {dec(Fraction(100 + tax, 100))}. "
             f"{price} x {dec(Fraction(100 - disc, 100))} = {dec(after)}, and {dec(after)} x {dec(Fraction(100 + tax, 100))} = {dec(final)}. Same.",
             f"Hmm, would the answer change if tax came first? Multiplication is commutative, so actually no, it would be the same {money(cents)} either way. Good to know, but I did it in the stated order anyway."]
        return q, r, money(cents)
    if t == 2:
        b, mult, n = rng.randint(3, 20), rng.randint(2, 5), rng.randint(2, 12)
        a = mult * b
        S = a + b + 2 * n
        na, nb = rng.sample(NAMES, 2)
        q = f"{na} is {mult} times as old as {nb}. In {n} years, the sum of their ages will be {S}. How old is {nb} now?"
        r = [f"Let {nb}'s age now be x. Then {na} is {mult}x.",
             f"In {n} years: {nb} will be x + {n} and {na} will be {mult}x + {n}.",
             f"Sum: (x + {n}) + ({mult}x + {n}) = {mult + 1}x + {2 * n} = {S}.",
             f"So {mult + 1}x = {S} - {2 * n} = {S - 2 * n}, and x = {S - 2 * n} / {mult + 1} = {b}.",
             f"That means {na} is {mult} x {b} = {a} now.",
             rng.choice(DOUBLE_CHECKS) + f" In {n} years {nb} is {b + n} and {na} is {a + n}; {b + n} + {a + n} = {S}. And {a} / {b} = {mult}. Both conditions hold."]
        return q, r, f"{nb} is {b} years old"
    if t == 3:
        a, dd, n = rng.randint(10, 25), rng.randint(1, 4), rng.randint(8, 30)
        last = a + (n - 1) * dd
        total = n * (a + last) // 2
        q = f"A theatre has {n} rows. The first row has {a} seats and each row after that has {dd} more seat{'s' if dd > 1 else ''} than the row in front of it. How many seats are there in total?"
        r = [f"This is an arithmetic sequence: first term {a}, common difference {dd}, {n} terms.",
             f"The last row has {a} + ({n} - 1) x {dd} = {a} + {(n - 1) * dd} = {last} seats.",
             f"Sum = number of terms x (first + last) / 2 = {n} x ({a} + {last}) / 2 = {n} x {a + last} / 2 = {n * (a + last)} / 2 = {total}.",
             rng.choice(DOUBLE_CHECKS) + f" Pairing idea: row 1 + row {n} = {a + last}, row 2 + row {n - 1} = {a + dd + last - dd}, every pair gives {a + last}. "
             f"With {n} rows there are {n / 2:g} pairs, so {n / 2:g} x {a + last} = {total}.",
             f"Another sanity check: the average row has between {a} and {last} seats, and {total} / {n} = {fmt(Fraction(total, n))}, which is right in the middle."]
        return q, r, f"{total} seats"
    if t == 4:
        x, y = rng.sample([6, 8, 9, 10, 12, 14, 15, 16, 18, 20, 24, 25, 30], 2)
        l = x * y // math.gcd(x, y)
        h0, m0 = rng.randint(6, 9), rng.choice([0, 15, 30, 45])
        tot = h0 * 60 + m0 + l
        q = f"Bus A leaves the station every {x} minutes and bus B every {y} minutes. Both leave together at {h0}:{m0:02d}. When is the next time they leave together?"
        r = [f"They leave together again after a number of minutes that is a multiple of both {x} and {y}, and I want the smallest one: the least common multiple.",
             f"Prime factors: {x} = {factorize(x)}, {y} = {factorize(y)}.",
             f"LCM takes each prime to its highest power: that gives {l}. Let me verify: {l} / {x} = {l // x} and {l} / {y} = {l // y}, both whole numbers.",
             f"Is there anything smaller? The GCD is {math.gcd(x, y)}, and LCM = {x} x {y} / {math.gcd(x, y)} = {x * y} / {math.gcd(x, y)} = {l}. Consistent.",
             f"So {l} minutes after {h0}:{m0:02d}. {l} minutes is {l // 60} h {l % 60} min. {h0}:{m0:02d} plus that is {tot // 60}:{tot % 60:02d}.",
             rng.choice(DOUBLE_CHECKS) + f" {h0 * 60 + m0} + {l} = {tot} minutes after midnight, which is {tot // 60}:{tot % 60:02d}."]
        return q, r, f"{tot // 60}:{tot % 60:02d} (after {l} minutes)"
    if t == 5:
        a = 20 * rng.randint(2, 30)
        p = rng.choice([v for v in range(-40, 85, 5) if v])
        b = a + a * p // 100
        item = rng.choice(["A bicycle's price", "The rent", "A town's population", "The number of members in a club"])
        q = f"{item} changed from {a} to {b}. By what percentage did it change?"
        r = [f"Percentage change = (new - old) / old x 100.",
             f"New - old = {b} - {a} = {b - a}.",
             f"{b - a} / {a} = {dec(Fraction(b - a, a))}. Times 100 gives {p}%.",
             f"So it's a{'n increase' if p > 0 else ' decrease'} of {abs(p)}%.",
             rng.choice(DOUBLE_CHECKS) + f" {a} x (1 {'+' if p > 0 else '-'} {dec(Fraction(abs(p), 100))}) = {a} x {dec(Fraction(100 + p, 100))} = {b}. Correct.",
             f"I should divide by the old value {a}, not the new one: {b - a} / {b} would give about {100 * (b - a) / b:.1f}%, which is the wrong base."]
        return q, r, f"{'an increase' if p > 0 else 'a decrease'} of {abs(p)}%"
    if t == 6:
        a, b = rng.sample(range(2, 13), 2)
        tog = Fraction(a * b, a + b)
        mins = tog * 60
        q = f"Pipe A can fill a tank in {a} hours and pipe B can fill it in {b} hours. How long does it take to fill the tank with both pipes open?"
        r = [f"Work with rates: A fills 1/{a} of the tank per hour, B fills 1/{b}.",
             f"Together: 1/{a} + 1/{b} = {b}/{a * b} + {a}/{a * b} = {a + b}/{a * b} of the tank per hour.",
             f"Time = 1 / ({a + b}/{a * b}) = {a * b}/{a + b}" + (f" = {frac(tog)}" if frac(tog) != f"{a * b}/{a + b}" else "") + f" hours, about {float(tog):.3f} h.",
             f"In minutes: {float(tog):.3f} x 60 = {float(mins):.1f} minutes, i.e. about {round(float(mins)) // 60} h {round(float(mins)) % 60} min.",
             rng.choice(DOUBLE_CHECKS) + f" The answer must be less than the faster pipe alone ({min(a, b)} h) and it is. "
             f"In {frac(tog)} h, A does {frac(tog / a)} of the tank and B does {frac(tog / b)}; together {frac(tog / a + tog / b)}. A full tank."]
        return q, r, f"{frac(tog)} hours" + ("" if tog.denominator == 1 else f" (about {float(tog):.2f} h)")
    if t == 7:
        m = rng.randint(-20, 60)
        even = rng.random() < 0.5
        if even:
            m *= 2
            q = f"The sum of three consecutive even integers is {3 * m}. What are the integers?"
            r = [f"Let the middle one be n; the others are n - 2 and n + 2.", f"Sum: (n - 2) + n + (n + 2) = 3n = {3 * m}, so n = {m}."]
            nums = (m - 2, m, m + 2)
        else:
            q = f"The sum of three consecutive integers is {3 * m}. What are the integers?"
            r = [f"Let the middle one be n; the others are n - 1 and n + 1.", f"Sum: (n - 1) + n + (n + 1) = 3n = {3 * m}, so n = {m}."]
            nums = (m - 1, m, m + 1)
        r += [f"The integers are {nums[0]}, {nums[1]} and {nums[2]}.",
              rng.choice(DOUBLE_CHECKS) + f" {nums[0]} + {nums[1]} = {nums[0] + nums[1]}, plus {nums[2]} = {sum(nums)}. Yes."
              + (" They are all even, as required." if even else ""),
              "Using the middle number as the unknown makes the +1 and -1 cancel, which keeps the algebra short."]
        return q, r, ", ".join(map(str, nums))
    n5, n10 = rng.randint(2, 30), rng.randint(2, 30)
    N, V = n5 + n10, 5 * n5 + 10 * n10
    q = f"A jar holds {N} coins, all nickels (5 cents) and dimes (10 cents), worth {money(V)} in total. How many of each coin are there?"
    r = [f"Let d be the number of dimes; then there are {N} - d nickels.",
         f"Value in cents: 10d + 5({N} - d) = {V}. Expanding: 10d + {5 * N} - 5d = {V}, so 5d = {V - 5 * N} and d = {n10}.",
         f"Nickels: {N} - {n10} = {n5}.",
         rng.choice(DOUBLE_CHECKS) + f" {n5} x 5 = {5 * n5} cents, {n10} x 10 = {10 * n10} cents, total {V} cents = {money(V)}. Coins: {n5} + {n10} = {N}.",
         f"Another way to see it: if all {N} were nickels that would be {5 * N} cents; each dime adds 5 more, and we're {V - 5 * N} cents over, so {V - 5 * N} / 5 = {n10} dimes."]
    return q, r, f"{n5} nickels and {n10} dimes"


MOLECULES = [("H2O", {"H": 2, "O": 1}), ("CO2", {"C": 1, "O": 2}), ("NaCl", {"Na": 1, "Cl": 1}), ("CaCO3", {"Ca": 1, "C": 1, "O": 3}),
             ("NH3", {"N": 1, "H": 3}), ("CH4", {"C": 1, "H": 4}), ("C6H12O6", {"C": 6, "H": 12, "O": 6}), ("H2SO4", {"H": 2, "S": 1, "O": 4}),
             ("MgO", {"Mg": 1, "O": 1}), ("KCl", {"K": 1, "Cl": 1})]
ATOMIC = {"H": Fraction(1), "C": Fraction(12), "N": Fraction(14), "O": Fraction(16), "Na": Fraction(23), "Cl": Fraction(71, 2),
          "Ca": Fraction(40), "S": Fraction(32), "Mg": Fraction(24), "K": Fraction(39)}


def science_problem(rng: random.Random, k: int) -> tuple[str, list[str], str]:
    t = k % 9
    if t == 0:
        a, s = rng.randint(1, 6), rng.randint(2, 12)
        v, dist = a * s, Fraction(a * s * s, 2)
        q = f"A car starts from rest and accelerates uniformly at {a} m/s^2 for {s} seconds. What is its final speed, and how far does it travel?"
        r = [f"Uniform acceleration from rest, so u = 0. Two formulas: v = u + at and s = ut + (1/2)at^2.",
             f"v = 0 + {a} x {s} = {v} m/s.", f"s = (1/2) x {a} x {s}^2 = (1/2) x {a} x {s * s} = {dec(dist)} m.",
             rng.choice(DOUBLE_CHECKS) + f" Average speed is (0 + {v}) / 2 = {dec(Fraction(v, 2))} m/s, and over {s} s that's {dec(Fraction(v, 2))} x {s} = {dec(dist)} m. Same.",
             f"In km/h the final speed is {v} x 3.6 = {dec(Fraction(v * 36, 10))} km/h, a plausible number for a car."]
        return q, r, f"v = {v} m/s, distance = {dec(dist)} m"
    if t == 1:
        R = rng.randint(2, 60)
        I = rng.choice([Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(3, 2), Fraction(2), Fraction(3)])
        V = I * R
        P = V * I
        q = f"A {dec(V)} V battery is connected across a {R} ohm resistor. What current flows, and how much power does the resistor dissipate?"
        r = [f"Ohm's law: I = V / R = {dec(V)} / {R} = {dec(I)} A.",
             f"Power: P = V x I = {dec(V)} x {dec(I)} = {dec(P)} W.",
             rng.choice(DOUBLE_CHECKS) + f" P = I^2 R = {dec(I)}^2 x {R} = {dec(I * I)} x {R} = {dec(I * I * R)} W, and P = V^2 / R = {dec(V * V)} / {R} = {dec(V * V / R)} W. All three agree.",
             "Units: volts over ohms is amperes, volts times amperes is watts. Fine."]
        return q, r, f"I = {dec(I)} A, P = {dec(P)} W"
    if t == 2:
        vol = rng.choice([10, 20, 25, 40, 50, 80, 100, 125, 200, 250])
        while True:
            mass = rng.randint(max(1, vol // 3), vol * 3)
            if mass != vol:
                break
        rho = Fraction(mass, vol)
        q = f"A solid block has a mass of {mass} g and a volume of {vol} cm^3. What is its density, and will it float in water?"
        r = [f"Density = mass / volume = {mass} / {vol} = {dec(rho)} g/cm^3.",
             f"Water has a density of about 1.00 g/cm^3. An object floats if it is less dense than the liquid.",
             f"{dec(rho)} is {'less' if rho < 1 else 'greater'} than 1, so the block {'floats' if rho < 1 else 'sinks'}.",
             rng.choice(DOUBLE_CHECKS) + f" {dec(rho)} x {vol} = {dec(rho * vol)} g, the mass. Another view: {vol} cm^3 of water weighs {vol} g, "
             f"and the block weighs {mass} g, {'less' if mass < vol else 'more'} than the water it would displace when fully submerged.",
             f"If it floats, the fraction below the surface equals the density ratio, {dec(rho)}." if rho < 1 else "It will rest on the bottom."]
        return q, r, f"{dec(rho)} g/cm^3; it {'floats' if rho < 1 else 'sinks'}"
    if t == 3:
        m, v = rng.choice([2, 5, 10, 50, 60, 70, 80, 1000, 1200, 1500]), rng.randint(2, 30)
        ke = Fraction(m * v * v, 2)
        q = f"An object of mass {m} kg moves at {v} m/s. What is its kinetic energy?"
        r = [f"KE = (1/2) m v^2.", f"v^2 = {v}^2 = {v * v}.", f"m v^2 = {m} x {v * v} = {m * v * v}.", f"Half of that: {dec(ke)} J.",
             (f"That's {dec(ke / 1000)} kJ." if ke >= 1000 else "That's a modest amount of energy."),
             rng.choice(DOUBLE_CHECKS) + f" (1/2) x {m} = {dec(Fraction(m, 2))}, times {v * v} = {dec(ke)}. Same.",
             f"Note that doubling the speed would quadruple the energy to {dec(4 * ke)} J, because v is squared."]
        return q, r, f"{dec(ke)} J"
    if t == 4:
        name, comp = rng.choice(MOLECULES)
        M = sum(ATOMIC[e] * c for e, c in comp.items())
        n = rng.choice([Fraction(1, 10), Fraction(1, 4), Fraction(1, 2), Fraction(3, 2), Fraction(2), Fraction(5, 2), Fraction(3), Fraction(4)])
        mass = n * M
        used = ", ".join(f"{e} = {dec(ATOMIC[e])}" for e in comp)
        q = f"How many moles are in {dec(mass)} g of {name}? Use atomic masses {used}."
        r = [f"First the molar mass of {name}: " + " + ".join(f"{c} x {dec(ATOMIC[e])}" for e, c in comp.items()) + f" = {dec(M)} g/mol.",
             f"Let me recompute that piece by piece: " + ", ".join(f"{e}: {c} x {dec(ATOMIC[e])} = {dec(c * ATOMIC[e])}" for e, c in comp.items()) + f". Sum {dec(M)}.",
             f"Moles = mass / molar mass = {dec(mass)} / {dec(M)} = {dec(n)} mol.",
             rng.choice(DOUBLE_CHECKS) + f" {dec(n)} mol x {dec(M)} g/mol = {dec(n * M)} g. That's the given mass.",
             f"That's about {float(n) * 6.022:.3f} x 10^23 formula units, using Avogadro's number 6.022 x 10^23 per mole."]
        return q, r, f"{dec(n)} mol"
    if t == 5:
        c1 = rng.choice([Fraction(1, 2), Fraction(1), Fraction(2), Fraction(5), Fraction(6)])
        v1 = rng.choice([10, 20, 25, 50, 100])
        v2 = v1 * rng.choice([2, 4, 5, 8, 10])
        c2 = c1 * v1 / v2
        q = f"{v1} mL of a {dec(c1)} mol/L salt solution is diluted with water to a total volume of {v2} mL. What is the new concentration?"
        r = [f"Dilution doesn't change the amount of solute, so C1 V1 = C2 V2.",
             f"Moles of solute: {dec(c1)} mol/L x {v1} mL = {dec(c1 * v1)} mmol (mol/L times mL gives millimoles).",
             f"C2 = C1 V1 / V2 = {dec(c1 * v1)} / {v2} = {dec(c2)} mol/L.",
             rng.choice(DOUBLE_CHECKS) + f" The volume grew by a factor {v2 // v1}, so the concentration must drop by the same factor: {dec(c1)} / {v2 // v1} = {dec(c2)}.",
             f"Water added: {v2} - {v1} = {v2 - v1} mL, but the question asks for the concentration, not the water volume."]
        return q, r, f"{dec(c2)} mol/L"
    if t == 6:
        tt = rng.randint(1, 6)
        g = Fraction(49, 5)
        hgt = g * tt * tt / 2
        q = f"A stone is dropped from rest from a height of {dec(hgt)} m. Ignoring air resistance and taking g = 9.8 m/s^2, how long does it take to hit the ground, and how fast is it going?"
        r = [f"Free fall from rest: h = (1/2) g t^2, so t = sqrt(2h / g).",
             f"2h = 2 x {dec(hgt)} = {dec(2 * hgt)}. Divided by 9.8: {dec(2 * hgt)} / 9.8 = {dec(2 * hgt / g)}. sqrt({dec(2 * hgt / g)}) = {tt} s.",
             f"Speed at impact: v = g t = 9.8 x {tt} = {dec(g * tt)} m/s.",
             rng.choice(DOUBLE_CHECKS) + f" Energy: v^2 = 2 g h = 2 x 9.8 x {dec(hgt)} = {dec(2 * g * hgt)}, and {dec(g * tt)}^2 = {dec(g * g * tt * tt)}. Same.",
             f"The mass of the stone doesn't matter without air resistance."]
        return q, r, f"t = {tt} s, v = {dec(g * tt)} m/s"
    if t == 7:
        m, a = rng.choice([2, 4, 5, 10, 20, 25, 50]), rng.randint(1, 8)
        F, tt = m * a, rng.randint(2, 10)
        q = f"A net force of {F} N acts on a {m} kg cart that starts at rest on a frictionless track. What is its acceleration, and what is its speed after {tt} s?"
        r = [f"Newton's second law: a = F / m = {F} / {m} = {a} m/s^2.",
             f"Constant acceleration from rest: v = a t = {a} x {tt} = {a * tt} m/s.",
             rng.choice(DOUBLE_CHECKS) + f" Impulse F t = {F} x {tt} = {F * tt} N s equals the momentum m v = {m} x {a * tt} = {m * a * tt} kg m/s. Consistent.",
             "Frictionless means the applied force is the net force, so nothing needs to be subtracted."]
        return q, r, f"a = {a} m/s^2, v = {a * tt} m/s"
    m, dT = rng.choice([100, 150, 200, 250, 500, 750, 1000]), rng.randint(5, 70)
    Q = Fraction(418, 100) * m * dT
    q = f"How much heat is needed to warm {m} g of water by {dT} degrees C? Use c = 4.18 J/(g C)."
    r = [f"Q = m c dT.", f"{m} x 4.18 = {dec(Fraction(418, 100) * m)} J per degree.",
         f"Times {dT}: {dec(Fraction(418, 100) * m)} x {dT} = {dec(Q)} J, which is {dec(Q / 1000)} kJ.",
         rng.choice(DOUBLE_CHECKS) + f" {m} x {dT} = {m * dT}, and {m * dT} x 4.18 = {dec(Q)}. Same.",
         "The specific heat is per gram, and the mass is already in grams, so no unit conversion is needed."]
    return q, r, f"{dec(Q)} J ({dec(Q / 1000)} kJ)"


def run_snippet(code: str) -> str:
    """The ground truth for code questions comes from actually running the code."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(code, {})
    return buf.getvalue().rstrip("\n")


def code_problem(rng: random.Random, k: int) -> tuple[str, list[str], str]:
    t = k % 8
    if t == 0:
        a, b, m = rng.randint(1, 10), rng.randint(15, 40), rng.randint(3, 7)
        code = f"total = 0\nfor i in range({a}, {b}):\n    if i % {m} == 0:\n        total += i\nprint(total)"
        hits = [i for i in range(a, b) if i % m == 0]
        r = [f"range({a}, {b}) gives {a} up to {b - 1}; the end is excluded, so {b} itself is not included.",
             f"The loop adds i only when i % {m} == 0, i.e. multiples of {m}: {', '.join(map(str, hits)) or 'none'}.",
             f"Running total: {running_sum(hits) if len(hits) > 1 else (hits[0] if hits else 0)}.",
             rng.choice(DOUBLE_CHECKS) + f" Smallest multiple of {m} that is >= {a}: {hits[0] if hits else '-'}; largest below {b}: {hits[-1] if hits else '-'}. "
             f"{len(hits)} terms. Sum = {len(hits)} x ({hits[0]} + {hits[-1]}) / 2 = {sum(hits)}." if hits else "No multiples at all."]
        expect = str(sum(hits))
    elif t == 1:
        nums = rng.sample(range(1, 16), rng.randint(5, 8))
        code = f"nums = {nums}\nsquares = [n * n for n in nums if n % 2 == 1]\nprint(squares, sum(squares))"
        odd = [n for n in nums if n % 2 == 1]
        r = [f"The comprehension keeps n only if n % 2 == 1, so only odd numbers, in their original order: {odd}.",
             "Then each is squared: " + ", ".join(f"{n}*{n} = {n * n}" for n in odd) + ".",
             f"sum of {[n * n for n in odd]} = {sum(n * n for n in odd)}.",
             "print with two arguments separates them with a space, and the list prints in Python's repr with brackets and commas.",
             rng.choice(DOUBLE_CHECKS) + f" Even numbers dropped: {[n for n in nums if n % 2 == 0]}. The order is preserved because comprehensions iterate in order."]
        expect = f"{[n * n for n in odd]} {sum(n * n for n in odd)}"
    elif t == 2:
        word = rng.choice(["python", "quantize", "vision", "reasoning", "tensor", "gradient", "network", "calibrate", "matrix", "kernel"])
        a = rng.randint(1, 3)
        code = f"s = \"{word}\"\nt = s[::-1]\nprint(t[:{a + 2}].upper() + str(len(s)) + s[{a}])"
        rev = word[::-1]
        r = [f"s = \"{word}\", which has {len(word)} characters.",
             f"s[::-1] reverses it: \"{rev}\".",
             f"t[:{a + 2}] takes the first {a + 2} characters of the reversed string: \"{rev[:a + 2]}\", and .upper() makes it \"{rev[:a + 2].upper()}\".",
             f"str(len(s)) is \"{len(word)}\". s[{a}] is the character at index {a} of the original (0-based): \"{word[a]}\".",
             f"Concatenating: \"{rev[:a + 2].upper()}\" + \"{len(word)}\" + \"{word[a]}\" = \"{rev[:a + 2].upper()}{len(word)}{word[a]}\".",
             rng.choice(DOUBLE_CHECKS) + f" Indexing: " + ", ".join(f"{i}:{ch}" for i, ch in enumerate(word)) + f". Index {a} is '{word[a]}'. Good."]
        expect = f"{rev[:a + 2].upper()}{len(word)}{word[a]}"
    elif t == 3:
        pool = rng.sample(["red", "blue", "green", "cat", "dog", "sun", "tree", "book"], 4)
        while True:
            words = [rng.choice(pool) for _ in range(rng.randint(7, 11))]
            counts: dict[str, int] = {}
            for wd in words:
                counts[wd] = counts.get(wd, 0) + 1
            if sorted(counts.values()).count(max(counts.values())) == 1:
                break
        code = f"words = \"{' '.join(words)}\".split()\ncounts = {{}}\nfor w in words:\n    counts[w] = counts.get(w, 0) + 1\nbest = max(counts, key=counts.get)\nprint(best, counts[best], len(counts))"
        r = [f"split() gives the list {words}.",
             "The loop counts each word with dict.get(w, 0) + 1. Going through: "
             + ", ".join(f"'{wd}' -> {words[:i + 1].count(wd)}" for i, wd in enumerate(words)) + ".",
             f"Final counts: {counts}.",
             f"max(counts, key=counts.get) returns the key with the largest count: '{max(counts, key=counts.get)}' with {max(counts.values())}; there is no tie, so iteration order doesn't matter.",
             f"len(counts) is the number of distinct words: {len(counts)}.",
             rng.choice(DOUBLE_CHECKS) + f" The counts sum to {sum(counts.values())}, which is the number of words, {len(words)}."]
        expect = f"{max(counts, key=counts.get)} {max(counts.values())} {len(counts)}"
    elif t == 4:
        n = rng.randint(100, 99999)
        code = f"n = {n}\ns = 0\nsteps = 0\nwhile n > 0:\n    s += n % 10\n    n //= 10\n    steps += 1\nprint(s, steps)"
        digs = [int(ch) for ch in str(n)][::-1]
        r = [f"This loop peels off the last digit each time with n % 10 and drops it with n //= 10.",
             "Tracing: " + "; ".join(f"digit {dg}, s = {sum(digs[:i + 1])}, n = {n // 10 ** (i + 1)}" for i, dg in enumerate(digs)) + ".",
             f"The loop stops when n reaches 0, after {len(digs)} iterations, one per digit.",
             rng.choice(DOUBLE_CHECKS) + f" The digits of {n} are {' + '.join(str(n))} = {sum(digs)}. And {n} has {len(str(n))} digits."]
        expect = f"{sum(digs)} {len(digs)}"
    elif t == 5:
        m = rng.randint(5, 10)
        code = f"def f(n):\n    if n <= 1:\n        return n\n    return f(n - 1) + f(n - 2)\n\nprint([f(i) for i in range(4)], f({m}))"
        fib = [0, 1]
        while len(fib) <= m:
            fib.append(fib[-1] + fib[-2])
        r = ["This is the naive recursive Fibonacci: f(0) = 0, f(1) = 1, and f(n) = f(n-1) + f(n-2).",
             f"Building up: " + ", ".join(f"f({i}) = {fib[i]}" for i in range(m + 1)) + ".",
             f"The list comprehension gives [f(0), f(1), f(2), f(3)] = {fib[:4]}. And f({m}) = {fib[m]}.",
             rng.choice(DOUBLE_CHECKS) + f" f({m}) = f({m - 1}) + f({m - 2}) = {fib[m - 1]} + {fib[m - 2]} = {fib[m]}. "
             "Recursion depth is small, so no RecursionError; it's slow for big n but fine here."]
        expect = f"{fib[:4]} {fib[m]}"
    elif t == 6:
        a = rng.sample(range(1, 10), rng.randint(2, 4))
        x, y = rng.randint(10, 20), rng.randint(21, 30)
        code = f"a = {a}\nb = a\nc = a[:]\nb.append({x})\nc.append({y})\nprint(a, len(c), a is b, a == c)"
        r = [f"b = a does not copy: b and a are the same list object. c = a[:] makes a shallow copy, a new list.",
             f"b.append({x}) modifies that shared list, so a becomes {a + [x]}.",
             f"c.append({y}) only changes the copy: c = {a + [y]}, with length {len(a) + 1}.",
             f"a is b: True, same object. a == c compares contents: {a + [x]} vs {a + [y]}, different last elements, so False.",
             rng.choice(DOUBLE_CHECKS) + " The classic trap is thinking b = a copies the list; it doesn't, which is why a sees the append through b."]
        expect = f"{a + [x]} {len(a) + 1} True False"
    else:
        n0 = rng.randint(6, 40)
        code = f"n = {n0}\nsteps = 0\nwhile n != 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\nprint(steps)"
        seq, n = [n0], n0
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            seq.append(n)
        r = ["This is the Collatz process: halve even numbers, map odd n to 3n + 1, count steps until reaching 1.",
             f"Tracing from {n0}: " + " -> ".join(map(str, seq)) + ".",
             f"Each arrow is one step, so the number of steps is the length of the sequence minus one: {len(seq)} - 1 = {len(seq) - 1}.",
             rng.choice(DOUBLE_CHECKS) + " Checking a few transitions: " + ", ".join(
                 f"{p} is {'even so ' + str(p) + ' // 2 = ' + str(p // 2) if p % 2 == 0 else 'odd so 3 x ' + str(p) + ' + 1 = ' + str(3 * p + 1)}" for p in seq[:3]) + "."]
        expect = str(len(seq) - 1)
    out = run_snippet(code)
    assert out == expect, (code, out, expect)  # the trace above must agree with Python
    q = rng.choice(["What does this Python code print?", "What is the output of the following Python program?",
                    "Trace this Python snippet and give its exact output."]) + f"\n\n```python\n{code}\n```"
    r = [f"Let me trace through the code line by line."] + r + [f"So the printed output is: {out}."]
    return q, r, f"`{out}`" if "\n" not in out else f"```\n{out}\n```"


def text_sample(kind: str, rng: random.Random, k: int) -> tuple[str, str, str]:
    q, steps, ans = {"math": math_problem, "science": science_problem, "code": code_problem}[kind](rng, k)
    reasoning = " ".join([rng.choice(TEXT_OPENERS)] + steps + [rng.choice(CONCLUDERS).format(a=ans.strip("`"))])
    return q, reasoning, f"**Answer:** {ans}" if kind != "code" else f"The program prints:\n\n{ans}"


# --------------------------------------------------------------------------- assembly

RESTATE = ["The question asks: {q}", "So what I'm asked is: {q}", "The question is: \"{q}\"", "I need to answer: {q}"]
REFLECT = {
    "image": [
        "Before I finalize, let me think about whether anything in the image could have misled me. The numbers I used are printed "
        "right there, I haven't mixed up any labels, and I used every value the question needs and nothing else.",
        "Hmm, is there any trick in how the question is worded? I don't think so. It asks for exactly what I computed, and the units "
        "follow from what is written in the image.",
        "One more consideration: could a label be partly hidden or ambiguous? Looking again, everything I needed is clearly visible, "
        "so I'm not relying on a guess anywhere.",
        "Let me also make sure I answered the actual question and not a neighbouring one, since it's easy to compute the right thing "
        "for the wrong item. Re-reading the question: yes, this is what it asks for.",
    ],
    "scene": [
        "Before I finalize, let me make sure I didn't merge two objects into one or count one twice. The objects are well separated, "
        "each in its own spot, so the count is reliable.",
        "Hmm, could anything be partly hidden behind something else? Nothing overlaps in this picture, so what I see is all there is.",
        "Let me also make sure I answered the actual question and not a neighbouring one, since it's easy to count the wrong kind of "
        "object. Re-reading the question: yes, this is what it asks for.",
        "The grainy texture is just noise in the picture; it doesn't hide any shapes, so it can't change the answer.",
    ],
    "code": [
        "Let me make sure I didn't trip over Python semantics: range excludes its end, // is floor division, slices exclude the stop "
        "index, and assignment of a list doesn't copy it. None of these changes what I traced.",
        "Did I answer exactly what was asked? The question wants the printed output character for character, and print separates "
        "several arguments with single spaces, which is how I wrote it.",
        "One thing I want to avoid is an off-by-one error, the most common slip when tracing loops. I went through the boundary "
        "iterations once more and they hold.",
        "Is there any hidden state, like a global variable or a mutable default argument, that could change the result? No, the "
        "snippet is self-contained.",
    ],
    "text": [
        "Before I finalize, is there any trick in the wording? I don't think so; every number in the problem was used where it "
        "belongs, and none was used twice.",
        "Let me also check the units and the order of magnitude. The result has the right units and a sensible size for this kind "
        "of problem, so nothing looks off.",
        "Hmm, did I answer exactly what was asked? Re-reading the question, yes, that's the quantity it wants, in the form it wants.",
        "One thing I want to avoid is an off-by-one or sign slip, which is the most common error in this kind of problem. I went "
        "through each step once more in my head and they hold.",
    ],
}


def r1_chain(rng: random.Random, question: str, reasoning: str, final: str, modality: str) -> str:
    """Wrap a builder's reasoning the way R1-style models think out loud:
    restate the question after the first sentence, reflect, then summarise."""
    q = question.split("\n\n")[0]
    head, _, tail = reasoning.partition(". ")
    summary = " ".join(final.replace("**", "").replace("`", "").replace("Answer:", "The answer is").split())
    summary += "" if summary.endswith((".", "!", "?")) else "."
    parts = [head + ".", rng.choice(RESTATE).format(q=q), tail, *rng.sample(REFLECT[modality], 2),
             rng.choice(["So, to summarize:", "Putting it all together:", "Final check done."]) + " " + summary]
    return " ".join(p.strip() for p in parts if p.strip())


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


def generate(out_dir: Path = HERE, n_calib_images: int = 128, n_calib_text: int = 64,
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
        with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as fh:
            for s in samples:
                fh.write(json.dumps(s, ensure_ascii=False) + "\n")
    for old in (out_dir / "images").glob("*.png"):  # images of a previous, larger run
        if old.name not in written and old.name.startswith(("calib-", "eval-")):
            old.unlink()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    ap.add_argument("--calib-images", type=int, default=128)
    ap.add_argument("--calib-text", type=int, default=64)
    ap.add_argument("--eval-images", type=int, default=32)
    ap.add_argument("--eval-text", type=int, default=16)
    a = ap.parse_args(argv)
    generate(a.out, a.calib_images, a.calib_text, a.eval_images, a.eval_text)


if __name__ == "__main__":
    main()
