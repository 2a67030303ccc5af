"""The `s2tf` command: a thin Typer layer over `S2TF` (parse, validate, call, print).

Heavy imports (torch, librosa, cv2) happen inside the commands so `s2tf --help` is instant.
Results go to stdout; progress, warnings and errors go to stderr. A user error prints one line
and exits with the code documented in `errors.py`; it never prints a traceback. Each command module
imports `common` and nothing above it; this package puts them on one app.
"""

from __future__ import annotations

import sys

from . import use  # noqa: F401  (each module registers its commands on `app`; the jobs lead the help)

# isort: split
from . import eval, eval_people, serve, train  # noqa: F401
from .common import app, handle_errors

__all__ = ["app", "handle_errors", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point; `argv` lets tests call the real CLI in-process."""
    app(args=argv, prog_name="s2tf")


if __name__ == "__main__":
    main(sys.argv[1:])
