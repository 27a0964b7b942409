"""Whether anyone still waits for the command running in this thread.

The API stops waiting for a handler at its request's deadline and answers 503; it cancels
the handler's statement (infrastructure/cancellation.py), but the thread itself cannot be
stopped, and runs on until it returns. A command whose caller has gone rolls back instead
of committing, so that a 503 does not hide a write (unless the deadline passed during the
COMMIT itself). Scripts and the CLI set no caller: their commands always commit.
"""

from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

_gone: ContextVar[Callable[[], bool] | None] = ContextVar("caller_gone", default=None)

Argument = TypeVar("Argument")
Result = TypeVar("Result")


class CallerGone(Exception):
    """The caller stopped waiting for this command (its request got 503): nothing is kept."""


def run_awaited(
    gone: Callable[[], bool], handler: Callable[[Argument], Result], argument: Argument
) -> Result:
    """`handler(argument)`, whose commands commit only while `gone()` is false."""
    token = _gone.set(gone)
    try:
        return handler(argument)
    finally:
        _gone.reset(token)


def ensure_awaited() -> None:
    """Raise CallerGone if the caller of the running command stopped waiting for it."""
    gone = _gone.get()
    if gone is not None and gone():
        raise CallerGone("the caller stopped waiting; rolled back")
