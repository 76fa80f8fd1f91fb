"""Line charts with one or two series."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from ..common import (
    WHITE, BLACK, GRID, PALETTE, MONTHS,
    clamp_aspect, fit_font, font, in_order_subset, listing, nice_axis,
)
from ..reasoning import CONCLUDERS, DOUBLE_CHECKS
from .themes import CHART_OPENERS, LINE_THEMES


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
            r += ["I need to compare the two series point by point."]
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
        r += ["The overall change only depends on the first and last points, not on the ups and downs in between.",
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
