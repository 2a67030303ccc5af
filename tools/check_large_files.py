"""Refuse files over 4 MB outside weights/: every file committed stays in every clone forever.

Run by pre-commit on the staged files (`.pre-commit-config.yaml`) and by `.ci/run` on every tracked file.
Weights folders are the one place large files belong, and only when they beat the shipped ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIMIT = 4 * 1024 * 1024
ALLOWED = ("weights/",)


def too_large(paths: list[str], limit: int = LIMIT) -> list[tuple[str, int]]:
    out = []
    for p in paths:
        path = Path(p)
        if p.replace("\\", "/").startswith(ALLOWED) or not path.is_file():
            continue
        size = path.stat().st_size
        if size > limit:
            out.append((p, size))
    return out


def main(argv: list[str]) -> int:
    paths = argv or subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    bad = too_large(paths)
    for p, size in bad:
        print(f"{p}: {size / 1e6:.1f} MB, over the 4 MB limit for files outside weights/", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
