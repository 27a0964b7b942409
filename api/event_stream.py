"""The response of an event stream: sse-starlette's EventSourceResponse, ended cleanly.

sse-starlette sends the events, a heartbeat comment every `ping` seconds, ends open streams
when uvicorn shuts down, and answers HEAD without starting the stream. What this adds:

- a subscriber whose send waits longer than the deadline (one that stopped reading) is
  disconnected rather than buffered for without bound, by the process's SendDeadlines
  rather than a timer per send (see api/send_deadlines.py);

- the stream's subscription to hints is closed however the response ends, including HEAD,
  where the events are never read and a close in their generator would never run;
- a stream ended by shutdown is finished properly (the last chunk of the body), so the
  client sees a complete response and reconnects, and uvicorn closes it without an error;
- a subscriber that stopped reading costs one warning line, not a traceback;
- the heartbeat is a comment line alone (see Heartbeat).
"""

import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Receive, Scope, Send

from api.send_deadlines import SendClock, SendDeadlines
from infrastructure.hints import Subscription

log = logging.getLogger("chatapi")


class Heartbeat(ServerSentEvent):
    """`: ping - <time>`, a comment line with no blank line after it: it keeps the connection
    busy and ends no block. sse-starlette's own ping ends one, which EventSource ignores
    but clients such as httpx-sse hand over as an event, empty, once the stream has sent an
    `id` (they keep it from block to block) or a `retry` (on the stream's first line)."""

    def encode(self) -> bytes:
        return f": ping - {datetime.now(UTC)}\r\n".encode()


class EventStream(EventSourceResponse):
    def __init__(
        self,
        events: AsyncIterator[bytes],
        subscription: Subscription,
        heartbeat: float,
        deadlines: SendDeadlines,
        release: Callable[[], None],
    ) -> None:
        super().__init__(
            events,
            # no-cache, not sse-starlette's no-store: what the contract names, and what lets a
            # fan-out proxy share one stream between clients if it wants to.
            headers={"Cache-Control": "no-cache"},
            ping=heartbeat,
            ping_message_factory=Heartbeat,
        )
        self._subscription = subscription
        self._release = release  # the caller's stream slot (api/stream_slots.py)
        self._deadlines = deadlines
        self._clock = SendClock()

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        # Every send of the stream, events and heartbeats: timed by the deadlines' task.
        self._clock.began = time.monotonic()
        try:
            await send(message)
        finally:
            self._clock.began = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        finished = False

        async def send_and_note(message: Message) -> None:
            nonlocal finished
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True

        self._deadlines.watch(self._clock)
        try:
            with self._clock.scope:
                await super().__call__(scope, receive, send_and_note)
        finally:
            self._deadlines.forget(self._clock)
            self._subscription.close()
            self._release()
        if self._clock.expired:
            # The socket cannot take more, so the body cannot be finished either: uvicorn
            # closes the connection (and says the response was not completed).
            log.warning(
                "event stream of chat %d: a send waited %s s on a subscriber that stopped "
                "reading; disconnected",
                self._subscription.chat_id,
                self._deadlines.timeout,
            )
            return
        if not finished:
            # Ended by shutdown (or the client left, which makes this a no-op): the last chunk.
            with anyio.move_on_after(self._deadlines.timeout):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
