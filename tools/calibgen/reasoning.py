"""The R1-style voice of the answers: phrase tables shared by all builders (double-checks,
concluders) and ``r1_chain``, which wraps a builder's reasoning the way R1 thinks out loud."""

from __future__ import annotations

import random

DOUBLE_CHECKS = [
    "Let me double-check.",
    "Wait, let me verify that before I commit.",
    "Hmm, let me make sure I didn't misread anything.",
    "Let me re-check the numbers once more.",
    "Just to be safe, let me go through it again.",
    "Actually, let me confirm this another way.",
]
CONCLUDERS = [
    "So the answer is {a}.",
    "That confirms it: {a}.",
    "Okay, I'm confident the answer is {a}.",
    "Everything is consistent, so the answer is {a}.",
    "Good, both ways agree, so it's {a}.",
]


RESTATE = ["The question asks: {q}", "So what I'm asked is: {q}", "The question is: \"{q}\"", "I need to answer: {q}"]
REFLECT = {
    "image": [
        "Before I finalize, let me think about whether anything in the image could have misled me. The numbers I used are printed "
        "right there, I haven't mixed up any labels, and I used every value the question needs and nothing else.",
        "Hmm, is there any trick in how the question is worded? I don't think so. It asks for exactly what I computed, and the units "
        "follow from what is written in the image.",
        "One more consideration: could a label be partly hidden or ambiguous? Looking again, everything I needed is clearly visible, "
        "so I'm not relying on a guess anywhere.",
        "Let me also make sure I answered the actual question and not a neighbouring one, since it's easy to compute the right thing "
        "for the wrong item. Re-reading the question: yes, this is what it asks for.",
    ],
    "scene": [
        "Before I finalize, let me make sure I didn't merge two objects into one or count one twice. The objects are well separated, "
        "each in its own spot, so the count is reliable.",
        "Hmm, could anything be partly hidden behind something else? Nothing overlaps in this picture, so what I see is all there is.",
        "Let me also make sure I answered the actual question and not a neighbouring one, since it's easy to count the wrong kind of "
        "object. Re-reading the question: yes, this is what it asks for.",
        "The grainy texture is just noise in the picture; it doesn't hide any shapes, so it can't change the answer.",
    ],
    "code": [
        "Let me make sure I didn't trip over Python semantics: range excludes its end, // is floor division, slices exclude the stop "
        "index, and assignment of a list doesn't copy it. None of these changes what I traced.",
        "Did I answer exactly what was asked? The question wants the printed output character for character, and print separates "
        "several arguments with single spaces, which is how I wrote it.",
        "One thing I want to avoid is an off-by-one error, the most common slip when tracing loops. I went through the boundary "
        "iterations once more and they hold.",
        "Is there any hidden state, like a global variable or a mutable default argument, that could change the result? No, the "
        "snippet is self-contained.",
    ],
    "text": [
        "Before I finalize, is there any trick in the wording? I don't think so; every number in the problem was used where it "
        "belongs, and none was used twice.",
        "Let me also check the units and the order of magnitude. The result has the right units and a sensible size for this kind "
        "of problem, so nothing looks off.",
        "Hmm, did I answer exactly what was asked? Re-reading the question, yes, that's the quantity it wants, in the form it wants.",
        "One thing I want to avoid is an off-by-one or sign slip, which is the most common error in this kind of problem. I went "
        "through each step once more in my head and they hold.",
    ],
}


def r1_chain(rng: random.Random, question: str, reasoning: str, final: str, modality: str) -> str:
    """Wrap a builder's reasoning the way R1-style models think out loud:
    restate the question after the first sentence, reflect, then summarise."""
    q = question.split("\n\n")[0]
    head, _, tail = reasoning.partition(". ")
    summary = " ".join(final.replace("**", "").replace("`", "").replace("Answer:", "The answer is").split())
    summary += "" if summary.endswith((".", "!", "?")) else "."
    parts = [head + ".", rng.choice(RESTATE).format(q=q), tail, *rng.sample(REFLECT[modality], 2),
             rng.choice(["So, to summarize:", "Putting it all together:", "Final check done."]) + " " + summary]
    return " ".join(p.strip() for p in parts if p.strip())
