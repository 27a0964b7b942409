"""One subscriber of a chat's events: where it is in the chat, and how it ends.

Written to by its chat's writer (api/live/writer.py) once it has caught up, and by its own
request task before that; either way through `send_now`, so that a writer never waits on a
client that stopped reading.
"""

import asyncio
import enum
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.types import Send

from api.live.send_now import send_now
from domain.principals import Principal


class Outcome(enum.Enum):
    FINISHED = "finished"  # the body is ended properly: the client reconnects, or is done
    GONE = "gone"  # the client went away: nothing more to send
    CUT = "cut"  # a send waited past STREAM_SEND_TIMEOUT: the connection is dropped


class Stream:
    """Its position is what it has been sent: the last seq, and the last membership change."""

    def __init__(self, chat_id: int, principal: Principal, loop: asyncio.AbstractEventLoop) -> None:
        self.chat_id = chat_id
        self.principal = principal
        self.user_id = principal.user_id
        # When its credential stops being good, on the loop's clock; None: never.
        self.expires_at: float | None = None
        if principal.expires_at is not None:
            left = (principal.expires_at - datetime.now(UTC)).total_seconds()
            self.expires_at = loop.time() + left
        self.send: Send | None = None  # once the response has started
        self.after = 0
        self.member_position = 0
        # When its latest read of the chat began (loop time): what a wake-up before it means
        # is in that read.
        self.read_began = loop.time()
        # A send that could not finish at once, and when it began.
        self.sending: asyncio.Task[None] | None = None
        self.send_began = 0.0
        # Told when a send has to wait (the writer's timer keeps the deadline).
        self.on_wait: Callable[[Stream], None] | None = None
        self.outcome: Outcome | None = None
        # It missed what the writer sent while it waited on a send: it catches up.
        self.behind = False
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None

    def write(self, message: dict[str, object]) -> None:
        """Send without waiting: a send that has to wait goes on in a task (`sending`)."""
        assert self.send is not None
        try:
            sending = send_now(self.send, message)
        except Exception:  # the server refuses the send: the response is over
            self.end(Outcome.GONE)
            return
        if sending is not None:
            self.sending = sending
            self.send_began = self._loop.time()
            sending.add_done_callback(self._sent)
            if self.on_wait is not None:
                self.on_wait(self)

    async def write_own(self, data: bytes) -> None:
        """From the stream's own task: send, and wait for it (within STREAM_SEND_TIMEOUT)."""
        self.write(body(data))
        if self.sending is not None:
            await asyncio.wait([self.sending])

    def end(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        if outcome is not Outcome.FINISHED and self.sending is not None:
            self.sending.cancel()
        self._wake()

    def fall_behind(self) -> None:
        """The writer went on without it (it was still sending); it catches up once it can."""
        self.behind = True
        if self.sending is None:
            self._wake()

    async def wait(self) -> Outcome | None:
        """Until it ends (its outcome), or falls behind (None: it catches up by itself)."""
        while self.outcome is None and not (self.behind and self.sending is None):
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.outcome is not None:
            return self.outcome
        self.behind = False
        return None

    def _sent(self, sending: "asyncio.Task[None]") -> None:
        if self.sending is sending:
            self.sending = None
        if sending.cancelled() or sending.exception() is not None:
            self.end(Outcome.GONE)  # unless already ended otherwise (CUT cancels it)
        elif self.behind or self.outcome is not None:
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def body(data: bytes) -> dict[str, object]:
    """A chunk of the stream's body (ASGI `http.response.body`, more to come)."""
    return {"type": "http.response.body", "body": data, "more_body": True}
