"""Wake-ups of LocalHints as a test waits for them: what a chat's writer would be woken by."""

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from domain.events import MessagePosted
from infrastructure.hints import LocalHints


class Waiter:
    """One follower of a chat: `wait` answers whether it was woken since the last wait."""

    def __init__(self, fan_out: "FanOut", chat_id: int) -> None:
        self._fan_out = fan_out
        self.chat_id = chat_id
        self._woken = asyncio.Event()
        self.arrivals: list[Sequence[MessagePosted] | None] = []

    def wake(self, arrivals: Sequence[MessagePosted] | None = None) -> None:
        self.arrivals.append(arrivals)
        self._woken.set()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._woken.wait(), timeout)
        except TimeoutError:
            return False
        self._woken.clear()
        return True

    def close(self) -> None:
        self._fan_out.remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FanOut:
    """The one target LocalHints wakes for a chat, passing each wake-up to every waiter."""

    def __init__(self, hints: LocalHints, chat_id: int) -> None:
        self._hints = hints
        self.chat_id = chat_id
        self.waiters: set[Waiter] = set()

    def wake(self, arrivals: Sequence[MessagePosted] | None = None) -> None:
        for waiter in tuple(self.waiters):
            waiter.wake(arrivals)

    def remove(self, waiter: Waiter) -> None:
        if waiter not in self.waiters:
            return
        self.waiters.discard(waiter)
        if not self.waiters:
            self._hints.unfollow(self.chat_id)
            del FAN_OUTS[(id(self._hints), self.chat_id)]


FAN_OUTS: dict[tuple[int, int], FanOut] = {}


def subscribe(hints: LocalHints, chat_id: int) -> Waiter:
    """A waiter for the chat's wake-ups on `hints` (on its event loop)."""
    key = (id(hints), chat_id)
    fan_out = FAN_OUTS.get(key)
    if fan_out is None:
        fan_out = FAN_OUTS[key] = FanOut(hints, chat_id)
        hints.follow(chat_id, fan_out)
    waiter = Waiter(fan_out, chat_id)
    fan_out.waiters.add(waiter)
    return waiter
