"""The deadline on an event stream's sends, kept by one task per process.

A send to a subscriber returns at once while its socket takes the bytes; it waits only when
the subscriber stopped reading and the socket's buffers are full. A timer per send (what
sse-starlette's `send_timeout` arms: an anyio cancel scope around every send) was a tenth of
the server's time with 1,000 streams open and posts arriving, for a wait that almost never
happens. Instead each stream notes when its current send began, and this task, every quarter
of the deadline, cancels the streams whose send has waited longer.
"""

import asyncio
import time
from contextlib import suppress

import anyio


class SendClock:
    """One stream's send in progress: when it began (time.monotonic()), None between sends."""

    def __init__(self) -> None:
        self.began: float | None = None
        self.scope = anyio.CancelScope()
        self.expired = False


class SendDeadlines:
    """The streams of one process, watched while open; `start` and `stop` in the lifespan."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._clocks: set[SendClock] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, clock: SendClock) -> None:
        self._clocks.add(clock)

    def forget(self, clock: SendClock) -> None:
        self._clocks.discard(clock)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def expire(self) -> int:
        """Cancel every stream whose send began more than `timeout` seconds ago."""
        oldest = time.monotonic() - self.timeout
        expired = [c for c in self._clocks if c.began is not None and c.began < oldest]
        for clock in expired:
            clock.expired = True
            clock.scope.cancel()
            self._clocks.discard(clock)
        return len(expired)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.timeout / 4)
            self.expire()
