"""Wake-ups for one process: "chat 7 has news", from any thread to the chat's writer on the
event loop (api/live/writer.py), once for everything published since it was last woken. A
commit of this process hands its messages along; a hint from elsewhere carries none (None:
the writer reads)."""

import asyncio
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from domain.events import MessagePosted


class Woken(Protocol):
    def wake(self, arrivals: Sequence[MessagePosted] | None = None) -> None: ...


class LocalHints:
    """`follow`, `unfollow` and the wake-ups on `loop`; `publish` and `wake_all` from any
    thread, doing nothing while `loop` is None (a process without a loop has nobody to wake)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._followed: dict[int, Woken] = {}  # only the loop touches it: no lock
        # What other threads published since the loop last delivered, under the lock.
        self._lock = threading.Lock()
        self._pending: dict[int, list[MessagePosted] | None] = {}
        self._pending_all = False
        self._scheduled = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Set on the loop's own thread (the app's lifespan)."""
        self._loop = loop
        self._loop_thread = None if loop is None else threading.get_ident()

    @property
    def chats(self) -> int:  # the only per-chat state kept
        return len(self._followed)

    def follow(self, chat_id: int, target: Woken) -> None:
        if self._loop is None or asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("follow a chat on the event loop of the hints (LocalHints.loop)")
        self._followed[chat_id] = target

    def unfollow(self, chat_id: int) -> None:
        self._followed.pop(chat_id, None)

    def publish(
        self, chat_ids: Iterable[int], posted: Mapping[int, Sequence[MessagePosted]] | None = None
    ) -> None:
        """Wake these chats' writers with the messages this process committed, by chat."""
        if self._loop is None:
            return
        # A commit on the loop itself (infrastructure/loop_database.py) may look at who
        # follows: most commits have nobody here to wake. And it needs no thread-safe call.
        on_loop = threading.get_ident() == self._loop_thread
        if on_loop and not any(chat_id in self._followed for chat_id in chat_ids):
            return
        with self._lock:
            for chat_id in chat_ids:
                messages = None if posted is None else posted.get(chat_id)
                pending = self._pending.setdefault(chat_id, [])
                if messages is None or pending is None:
                    self._pending[chat_id] = None
                else:
                    pending.extend(messages)
            self._schedule(on_loop)

    def wake_all(self) -> None:
        """Every writer reads, whatever hints it may have missed."""
        with self._lock:
            self._pending_all = True
            self._schedule()

    def _schedule(self, on_loop: bool = False) -> None:
        # One call into the loop for everything published until it runs, not one per
        # publish: many handler threads committing at once cost one wake-up.
        loop = self._loop
        if loop is None or self._scheduled or not (self._pending or self._pending_all):
            return
        try:
            (loop.call_soon if on_loop else loop.call_soon_threadsafe)(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is left to wake
            self._pending.clear()
            return
        self._scheduled = True

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            wake_all, self._pending_all = self._pending_all, False
            self._scheduled = False
        if wake_all:
            for target in tuple(self._followed.values()):
                target.wake(None)
            return
        for chat_id, arrivals in pending.items():
            followed = self._followed.get(chat_id)
            if followed is not None:
                followed.wake(arrivals)
