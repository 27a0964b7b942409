"""Start an ASGI send and run it as far as it goes without waiting.

A send to a stream returns at once while the client's socket takes the bytes; it waits (for
the transport to drain) only when the client stopped reading. A writer that serves many
streams must never wait on one of them, nor pay for a task per send to find out: so it runs
the send's coroutine by hand up to its first wait, as a task's first step would (what
Python 3.12's eager tasks do), and only a send that has to wait becomes a task.
"""

import asyncio
from collections.abc import Coroutine, Generator
from functools import partial
from typing import Any, cast

from starlette.types import Message, Send

Waiting = Coroutine[Any, Any, None]


def send_now(send: Send, message: Message) -> "asyncio.Task[None] | None":
    """None when the send is done; else the task that finishes it (cancel it to give up).

    An error of the send is raised here, or by the task."""
    # An ASGI send is a coroutine function (starlette types it as returning an Awaitable).
    sending = cast(Waiting, send(message))
    try:
        waits_on = sending.send(None)
    except StopIteration:
        return None
    except BaseException:
        sending.close()
        raise
    return asyncio.ensure_future(_finish(sending, waits_on))


async def _finish(sending: Waiting, waits_on: Any) -> None:
    await _Resumed(sending, waits_on)


class _Resumed:
    """Awaits what a coroutine stopped on, then drives it on to its end: the rest of a task's
    steps, for a coroutine whose first step ran outside any task."""

    def __init__(self, sending: Waiting, waits_on: Any) -> None:
        self._sending = sending
        self._waits_on = waits_on

    def __await__(self) -> Generator[Any, None, None]:
        waits_on = self._waits_on
        while True:
            try:
                yield waits_on  # the future it stopped on (already marked as awaited), or None
            except BaseException as error:  # cancelled: the send sees it where it waits
                resume = partial(self._sending.throw, error)
            else:
                resume = partial(self._sending.send, None)
            try:
                waits_on = resume()
            except StopIteration:
                return
