"""User errors: bad input, missing files, incompatible checkpoints. Entry points print them without a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """A problem with what the user passed (a file, a setting, a checkpoint), with a message that says what to do."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used: unreadable, foreign, another family or format, unsafe, or incompatible."""


# Errors raised for bad input across the project; configs and data sources raise ValueError / FileNotFoundError.
USER_ERRORS = (UserError, ValueError, FileNotFoundError)


def reports_user_errors(main: F) -> F:
    """Wrap an entry point so that a user error prints `error: <message>` alone and exits with status 1;
    `HYDRA_FULL_ERROR=1` re-raises it with the whole traceback (for developers)."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
    return run  # type: ignore[return-value]
