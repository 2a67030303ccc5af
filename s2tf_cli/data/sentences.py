"""Random English sentences from a small grammar, so clips say varied things."""

from __future__ import annotations

import numpy as np

SUBJECTS = [
    "the old man",
    "my sister",
    "a small dog",
    "the teacher",
    "everyone here",
    "our neighbour",
    "the pilot",
    "this morning",
    "my friend",
    "the children",
    "a tall woman",
    "the doctor",
    "nobody",
    "the baker",
]
VERBS = [
    "opened",
    "painted",
    "watched",
    "carried",
    "bought",
    "found",
    "moved",
    "cleaned",
    "visited",
    "remembered",
    "forgot",
    "borrowed",
    "fixed",
    "followed",
    "described",
]
OBJECTS = [
    "the blue window",
    "a heavy box",
    "seven apples",
    "the quiet garden",
    "my umbrella",
    "the broken clock",
    "a long letter",
    "the river bank",
    "two yellow boats",
    "the kitchen door",
    "a warm jacket",
    "the map",
]
ENDINGS = [
    "before lunch",
    "last summer",
    "very slowly",
    "in the rain",
    "without a word",
    "on Monday",
    "at night",
    "after school",
    "by the sea",
    "with great care",
    "for an hour",
    "just in time",
]
OPENERS = ["Well,", "Honestly,", "Yesterday", "I think", "Look,", "Of course", "Maybe", "So"]


def sentence(rng: np.random.Generator) -> str:
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(ENDINGS)]
    if rng.random() < 0.4:
        parts.insert(0, rng.choice(OPENERS))
    text = " ".join(str(p) for p in parts)
    if rng.random() < 0.3:
        text += ", and then " + " ".join(str(rng.choice(x)) for x in (SUBJECTS, VERBS, OBJECTS))
    return text[0].upper() + text[1:] + rng.choice([".", "!", "?"])
