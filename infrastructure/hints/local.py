"""Wake-ups for the streams of one process: "chat 7 has news", delivered on its event loop.

Handler threads publish after their commit; streams wait on the loop. A hint from another
process carries no data: the woken stream reads what is new from the database, from its own
seq. A commit of this process hands its messages along with the wake-up, and a stream whose
seq they continue exactly sends them without a read (Subscription.take); anything else (a gap,
a hint from elsewhere, wake_all) means a read, so a message can be late, never lost.
"""

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

from domain.events import MessagePosted

# Messages this process committed, by chat, handed to the chat's streams; None: read instead
# (the news came from elsewhere, or is not a message).
Arrivals = Sequence[MessagePosted] | None
# More arrivals than this between two reads of a stream: it reads instead of keeping them.
MAX_ARRIVALS = 256


class Subscription:
    """One stream's wake-ups for one chat. Create with LocalHints.subscribe, on the loop."""

    def __init__(self, hints: "LocalHints", chat_id: int) -> None:
        self.chat_id = chat_id
        self._hints = hints
        # Stays set until the next wait: a hint that comes while the stream is reading is kept.
        self._woken = False
        # The wait in progress. A bare future and a timer, not asyncio.Event and
        # asyncio.timeout: a wait per stream per message, with 1,000 streams open.
        self._waiter: asyncio.Future[None] | None = None
        # When the latest wake-up came (time.monotonic()): a read started since then sees
        # every commit whose hint had arrived by then.
        self.woken_at = 0.0
        self._open = True
        # This process's messages since the last take, unless something else came too.
        self._arrived: list[MessagePosted] | None = []

    async def wait(self, timeout: float) -> bool:
        """True when woken (now or since the last wait), False after `timeout` seconds."""
        if not self._woken:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout, _end_wait, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self._woken:
                return False
        self._woken = False
        return True

    def wake(self, arrivals: Arrivals = None) -> None:
        self.woken_at = time.monotonic()
        arrived = self._arrived
        if arrivals is None or arrived is None or len(arrived) + len(arrivals) > MAX_ARRIVALS:
            self._arrived = None
        else:
            arrived.extend(arrivals)
        self._woken = True
        if self._waiter is not None:
            _end_wait(self._waiter)

    def take(self, after: int) -> list[MessagePosted] | None:
        """The messages that follow seq `after`, if this process's commits handed all of
        them over since the last take; None when the stream must read from the database.

        Each commit hands over its messages after it committed, in any order between
        threads; one whose seq does not follow on from `after` means a commit not handed
        over (yet): the read finds it. Later commits wake the stream again.
        """
        arrived, self._arrived = self._arrived, []
        if not arrived:
            return None
        following = sorted(
            (message for message in arrived if message.seq > after), key=lambda m: m.seq
        )
        for expected, message in enumerate(following, start=after + 1):
            if message.seq != expected:
                return None
        return following

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


def _end_wait(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


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
        self._pending: dict[int, list[MessagePosted] | None] = {}
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

    def publish(
        self, chat_ids: Iterable[int], posted: Mapping[int, Sequence[MessagePosted]] | None = None
    ) -> None:
        """Wake the subscriptions of these chats, handing over the messages `posted` to each
        (those this process committed, by chat). Thread-safe; returns at once."""
        if self._loop is None:
            return
        with self._lock:
            for chat_id in chat_ids:
                messages = None if posted is None else posted.get(chat_id)
                pending = self._pending.setdefault(chat_id, [])
                if messages is None or pending is None:
                    self._pending[chat_id] = None
                else:
                    pending.extend(messages)
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
            pending, self._pending = self._pending, {}
            wake_all, self._pending_all = self._pending_all, False
            self._scheduled = False
        if wake_all:
            for subscriptions in self._by_chat.values():
                for subscription in subscriptions:
                    subscription.wake()
            return
        for chat_id, arrivals in pending.items():
            for subscription in self._by_chat.get(chat_id, ()):
                subscription.wake(arrivals)

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._by_chat[subscription.chat_id]
        subscriptions.discard(subscription)
        self._count -= 1
        if not subscriptions:  # no state is kept for a chat nobody follows
            del self._by_chat[subscription.chat_id]
