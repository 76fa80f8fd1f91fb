"""Scatter plots of lettered points on a grid."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from PIL import Image, ImageDraw

from ..common import WHITE, BLACK, GRID, PALETTE, font, frac, listing, running_sum, simplify_sqrt
from ..reasoning import CONCLUDERS, DOUBLE_CHECKS
from .themes import CHART_OPENERS


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
