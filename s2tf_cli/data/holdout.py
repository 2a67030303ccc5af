"""Which real people are kept out of all training: the validation people every real-people figure is
reported on.

The rule is a hash of the person's name, so every tool (face set, voice set, eval) agrees on it without
a shared file, and adding people to a source never moves anyone already there across the line.
"""

from __future__ import annotations

import hashlib

# Share of each source's people held out. s2f: ~80 of 831 people; RAVDESS: 6 of 18 actors.
VALIDATION_SHARE = {"s2f": 0.10, "ravdess": 1 / 3}


def _unit(name: str) -> float:
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_validation(source: str, person: str) -> bool:
    """True for a person of a real-voice source that no training may see."""
    share = VALIDATION_SHARE.get(source, 0.0)
    return _unit(f"{source}/{person}") < share


def split_of(source: str, person: str) -> str:
    return "val" if is_validation(source, person) else "train"
