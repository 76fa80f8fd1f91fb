"""Documents: paragraphs of text with distractor numbers, and shop receipts."""

from __future__ import annotations

import random
from fractions import Fraction

from PIL import Image, ImageDraw

from .common import (
    WHITE, BLACK, NAMES, MONTH_NAMES, TOWNS,
    clamp_aspect, fmt, font, money, running_sum, wrap,
)
from .reasoning import CONCLUDERS, DOUBLE_CHECKS

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
