"""Rendered equations: linear, quadratic, systems, fractions, function values, order of operations."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from PIL import Image, ImageDraw

from .common import WHITE, BLACK, clamp_aspect, font, frac
from .reasoning import CONCLUDERS, DOUBLE_CHECKS


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
