"""One database read for the streams of a chat that want the same page at the same moment."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Page = TypeVar("Page")
# (chat id, the seq read after, who reads): streams share reads made for the same caller,
# whose membership each read checks.
Key = tuple[int, int, Hashable]


class SharedReads(Generic[Page]):
    """A hint wakes every stream of its chat at once, and at the chat's end they all ask for
    the page after the same seq: the first starts the read, the others await the same one.

    Only a read that started after a stream was woken is shared with it: one begun earlier
    may predate the commit whose hint woke the stream (times are time.monotonic()). One per
    app, on its event loop.
    """

    def __init__(self) -> None:
        self._running: dict[Key, tuple[float, asyncio.Future[Page]]] = {}

    async def read(self, key: Key, woken_at: float, fetch: Callable[[], Awaitable[Page]]) -> Page:
        running = self._running.get(key)
        if running is None or running[0] < woken_at:
            future = asyncio.ensure_future(fetch())
            running = (time.monotonic(), future)
            self._running[key] = running
            future.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a stream that goes away does not cancel the read the others await.
        return await asyncio.shield(running[1])

    def __len__(self) -> int:
        return len(self._running)

    def _forget(self, key: Key, done: asyncio.Future[Page]) -> None:
        if self._running.get(key, (0.0, None))[1] is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a failure nobody awaited is not logged
