"""Bar charts, vertical and horizontal."""

from __future__ import annotations

import random
from fractions import Fraction

from PIL import Image, ImageDraw

from ..common import (
    WHITE, BLACK, GRID, PALETTE,
    clamp_aspect, distinct_ints, fit_font, fmt, font, frac, in_order_subset, listing, nice_axis, running_sum,
)
from ..reasoning import CONCLUDERS, DOUBLE_CHECKS
from .themes import BAR_THEMES, CHART_OPENERS


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
        q = rng.choice(["What is the total of all the bars in the chart?",
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
        r += ["Sorting the values from largest to smallest: " + ", ".join(f"{cats[k]} ({vals[k]})" for k in order) + ".",
              f"So the largest is {cats[a]} with {vals[a]}, and the second largest is {cats[b]} with {vals[b]}.",
              f"The gap is {vals[a]} - {vals[b]} = {ans}.",
              rng.choice(DOUBLE_CHECKS) + f" Is any other bar between {vals[b]} and {vals[a]}? Looking at the list, no. And {vals[b]} + {ans} = {vals[a]}.",
              rng.choice(CONCLUDERS).format(a=f"{cats[a]}, by {ans} {unit}")]
        final = f"**{cats[a]}** has the largest value ({vals[a]}), exceeding the second largest, {cats[b]} ({vals[b]}), by **{ans} {unit}**."
    return img, q, " ".join(r), final
