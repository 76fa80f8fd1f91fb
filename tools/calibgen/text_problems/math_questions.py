"""Math word problems (speed, discounts, ages, series, LCM, percentages, rates, coins)."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from ..common import NAMES, dec, fmt, frac, money
from ..reasoning import DOUBLE_CHECKS


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
        r = ["Average speed is total distance divided by total time, not the average of the two speeds.",
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
        r = ["The order matters: the discount comes first, then tax on the discounted price.",
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
        r = ["Percentage change = (new - old) / old x 100.",
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
            r = ["Let the middle one be n; the others are n - 2 and n + 2.", f"Sum: (n - 2) + n + (n + 2) = 3n = {3 * m}, so n = {m}."]
            nums = (m - 2, m, m + 2)
        else:
            q = f"The sum of three consecutive integers is {3 * m}. What are the integers?"
            r = ["Let the middle one be n; the others are n - 1 and n + 1.", f"Sum: (n - 1) + n + (n + 1) = 3n = {3 * m}, so n = {m}."]
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
