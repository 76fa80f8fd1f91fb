"""Pie charts with percentage labels."""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from ..common import WHITE, BLACK, PALETTE, fmt, font, running_sum
from ..reasoning import CONCLUDERS, DOUBLE_CHECKS
from .themes import CHART_OPENERS, PIE_THEMES


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
