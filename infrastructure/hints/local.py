"""Wake-ups for the streams of one process: "chat 7 has news", delivered on its event loop.

Handler threads publish after their commit; streams wait on the loop. A wake-up carries no
data: the woken stream reads what is new from the database, from its own seq.
"""

import asyncio
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self


class Subscription:
    """One stream's wake-ups for one chat. Create with LocalHints.subscribe, on the loop."""

    def __init__(self, hints: "LocalHints", chat_id: int) -> None:
        self.chat_id = chat_id
        self._hints = hints
        # Stays set until the next wait: a hint that comes while the stream is reading is kept.
        self._woken = asyncio.Event()
        # When the latest wake-up came (time.monotonic()): a read started since then sees
        # every commit whose hint had arrived by then.
        self.woken_at = 0.0
        self._open = True

    async def wait(self, timeout: float) -> bool:
        """True when woken (now or since the last wait), False after `timeout` seconds."""
        if not self._woken.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._woken.wait()
            except TimeoutError:
                return False
        self._woken.clear()
        return True

    def wake(self) -> None:
        self.woken_at = time.monotonic()
        self._woken.set()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._hints._unsubscribe(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class LocalHints:
    """The subscriptions of one event loop, by chat.

    Subscribing, waiting and unsubscribing happen on the loop. `publish` and `wake_all` may be
    called from any thread; before `attach` (a process without a loop, such as a CLI command)
    they do nothing, as there is nobody to wake.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        # Only the loop touches the subscriptions, so they need no lock.
        self._by_chat: dict[int, set[Subscription]] = {}
        self._count = 0
        # What other threads published since the loop last delivered, under the lock.
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._pending_all = False
        self._scheduled = False

    @property
    def count(self) -> int:
        """Open subscriptions."""
        return self._count

    @property
    def chats(self) -> int:
        """Chats with an open subscription: the only per-chat state kept."""
        return len(self._by_chat)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def detach(self) -> None:
        self._loop = None

    def subscribe(self, chat_id: int) -> Subscription:
        if self._loop is None or asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("subscribe on the event loop the hints are attached to")
        subscription = Subscription(self, chat_id)
        self._by_chat.setdefault(chat_id, set()).add(subscription)
        self._count += 1
        return subscription

    def publish(self, chat_ids: Iterable[int]) -> None:
        """Wake the subscriptions of these chats. Thread-safe; returns at once."""
        if self._loop is None:
            return
        with self._lock:
            self._pending.update(chat_ids)
            self._schedule()

    def wake_all(self) -> None:
        """Wake every subscription: each re-reads, whatever hints it may have missed."""
        with self._lock:
            self._pending_all = True
            self._schedule()

    def _schedule(self) -> None:
        # One call into the loop for everything published until it runs, not one per
        # subscriber or per publish: many handler threads committing at once cost one wake-up.
        loop = self._loop
        if loop is None or self._scheduled or not (self._pending or self._pending_all):
            return
        try:
            loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is left to wake
            self._pending.clear()
            return
        self._scheduled = True

    def _deliver(self) -> None:
        with self._lock:
            chat_ids, self._pending = self._pending, set()
            wake_all, self._pending_all = self._pending_all, False
            self._scheduled = False
        if wake_all:
            for subscriptions in self._by_chat.values():
                for subscription in subscriptions:
                    subscription.wake()
            return
        for chat_id in chat_ids:
            for subscription in self._by_chat.get(chat_id, ()):
                subscription.wake()

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._by_chat[subscription.chat_id]
        subscriptions.discard(subscription)
        self._count -= 1
        if not subscriptions:  # no state is kept for a chat nobody follows
            del self._by_chat[subscription.chat_id]
