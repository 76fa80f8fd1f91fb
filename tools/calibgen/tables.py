"""Tables: grids of numbers with a header row."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from .common import (
    WHITE, BLACK, NAMES, MONTHS, DAYS, TOWNS,
    clamp_aspect, font, in_order_subset, listing, running_sum,
)
from .reasoning import CONCLUDERS, DOUBLE_CHECKS

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
