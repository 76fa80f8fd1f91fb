"""Code questions: "what does this Python snippet print?"."""

from __future__ import annotations

import random
import subprocess
import sys

from ..common import running_sum
from ..reasoning import DOUBLE_CHECKS


def run_snippet(code: str) -> str:
    """The ground truth for code questions comes from actually running the code.

    Returns what the snippet prints, with trailing newlines removed (as the old
    in-process version did with ``exec`` under ``contextlib.redirect_stdout``).
    """
    # The snippet runs in a separate, isolated interpreter rather than through exec()
    # in this process, so no generated code ever runs inside the generator itself:
    # it cannot touch our globals, imported modules or random state. -I: no user
    # site-packages, no PYTHON* variables, no script folder on sys.path. -X utf8 and
    # encoding="utf-8" make the text the same under any locale; text mode turns the
    # child's line endings into "\n", the same string redirect_stdout collected.
    proc = subprocess.run([sys.executable, "-I", "-X", "utf8", "-c", code],
                          capture_output=True, encoding="utf-8", timeout=60)
    if proc.returncode:
        raise RuntimeError(f"snippet exited with status {proc.returncode}:\n{code}\n{proc.stderr}")
    return proc.stdout.rstrip("\n")


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
             rng.choice(DOUBLE_CHECKS) + " Indexing: " + ", ".join(f"{i}:{ch}" for i, ch in enumerate(word)) + f". Index {a} is '{word[a]}'. Good."]
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
        r = ["This loop peels off the last digit each time with n % 10 and drops it with n //= 10.",
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
             "Building up: " + ", ".join(f"f({i}) = {fib[i]}" for i in range(m + 1)) + ".",
             f"The list comprehension gives [f(0), f(1), f(2), f(3)] = {fib[:4]}. And f({m}) = {fib[m]}.",
             rng.choice(DOUBLE_CHECKS) + f" f({m}) = f({m - 1}) + f({m - 2}) = {fib[m - 1]} + {fib[m - 2]} = {fib[m]}. "
             "Recursion depth is small, so no RecursionError; it's slow for big n but fine here."]
        expect = f"{fib[:4]} {fib[m]}"
    elif t == 6:
        a = rng.sample(range(1, 10), rng.randint(2, 4))
        x, y = rng.randint(10, 20), rng.randint(21, 30)
        code = f"a = {a}\nb = a\nc = a[:]\nb.append({x})\nc.append({y})\nprint(a, len(c), a is b, a == c)"
        r = ["b = a does not copy: b and a are the same list object. c = a[:] makes a shallow copy, a new list.",
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
    r = ["Let me trace through the code line by line."] + r + [f"So the printed output is: {out}."]
    return q, r, f"`{out}`" if "\n" not in out else f"```\n{out}\n```"
