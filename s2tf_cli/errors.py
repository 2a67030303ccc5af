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
