"""Text-only samples: math, science and code questions."""

from __future__ import annotations

import random

from ..reasoning import CONCLUDERS
from .code_questions import code_problem
from .math_questions import math_problem
from .science_questions import science_problem

TEXT_OPENERS = [
    "Okay, let me work through this carefully.",
    "Alright, let's see what the problem is asking.",
    "Hmm, let me read the problem again and pick out the numbers.",
    "Okay, so I need to figure this out step by step.",
    "Let me think about this.",
]


def text_sample(kind: str, rng: random.Random, k: int) -> tuple[str, str, str]:
    q, steps, ans = {"math": math_problem, "science": science_problem, "code": code_problem}[kind](rng, k)
    reasoning = " ".join([rng.choice(TEXT_OPENERS)] + steps + [rng.choice(CONCLUDERS).format(a=ans.strip("`"))])
    return q, reasoning, f"**Answer:** {ans}" if kind != "code" else f"The program prints:\n\n{ans}"
