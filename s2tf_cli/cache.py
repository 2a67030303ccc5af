"""Where s2tf keeps what it can recompute: gallery indexes, derived constants. Deleting it is always safe."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$S2TF_CACHE, else $XDG_CACHE_HOME/s2tf, else ~/.cache/s2tf."""
    env = os.environ.get("S2TF_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s2tf"
