"""Errors the user fixes: bad data, a missing file, a wrong setting, a step to run first.

The command line prints one of these as a single ``error: ...`` paragraph and exits with status 1,
without a Python traceback (``LIGHTNING_CRITRM_TRACEBACK=1`` shows it; the run's log file always
has it). Anything else is a bug and keeps its traceback. Each class also derives from the built-in
exception a caller would expect (``ValueError``, ``FileNotFoundError``, ...), so code that catches
those keeps working.
"""

from __future__ import annotations

import os

TRACEBACK_ENV = "LIGHTNING_CRITRM_TRACEBACK"
USER_ERROR_EXIT_CODE = 1


class UserError(Exception):
    """Something the user fixes. The message names what is wrong and where (file, line, field,
    setting), and what to do when that is not obvious."""


class InputError(UserError, ValueError):
    """A value the user gave (a data row, a setting) that cannot be used."""


class MissingInputError(UserError, FileNotFoundError):
    """A file, folder or model the user named that is not there or cannot be read."""


class NotReadyError(UserError, RuntimeError):
    """A step that has to run first, e.g. generating critiques before a ``require_cached`` fit."""


class NonFiniteError(UserError, FloatingPointError):
    """A non-finite loss or reward in training (diverged, or bad inputs): the run stops rather than
    train on it."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency a setting needs (``pip install 'lightning_critrm[...]'``)."""


def traceback_requested() -> bool:
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def user_error_in(exc: BaseException) -> UserError | None:
    """The UserError behind ``exc``: itself, or one it was explicitly raised from (``raise ... from``,
    as a library that wraps errors does)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__
    return None


def paragraph(error: UserError) -> str:
    """``error: <message>`` as one paragraph: the message's own lines, nothing else."""
    message = str(error).strip() or type(error).__name__
    return f"error: {message}"
