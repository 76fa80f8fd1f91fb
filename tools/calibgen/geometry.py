"""Geometry figures: right triangles, triangles with marked angles, circles and rectangles."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from PIL import Image, ImageDraw

from .common import WHITE, BLACK, clamp_aspect, fmt, font
from .reasoning import CONCLUDERS, DOUBLE_CHECKS

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
