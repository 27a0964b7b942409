"""The response of an event stream: sse-starlette's EventSourceResponse, ended cleanly.

sse-starlette sends the events, a heartbeat comment every `ping` seconds, gives up on a
subscriber whose sends wait longer than `send_timeout` (one that stopped reading: it is
disconnected rather than buffered for without bound), ends open streams when uvicorn shuts
down, and answers HEAD without starting the stream. What this adds:

- the stream's subscription to hints is closed however the response ends, including HEAD,
  where the events are never read and a close in their generator would never run;
- a stream ended by shutdown is finished properly (the last chunk of the body), so the
  client sees a complete response and reconnects, and uvicorn closes it without an error;
- a subscriber that stopped reading costs one warning line, not a traceback.
"""

import logging
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message, Receive, Scope, Send

from infrastructure.hints import Subscription

log = logging.getLogger("chatapi")


class EventStream(EventSourceResponse):
    def __init__(
        self,
        events: AsyncIterator[bytes],
        subscription: Subscription,
        heartbeat: float,
        send_timeout: float,
    ) -> None:
        super().__init__(
            events,
            # no-cache, not sse-starlette's no-store: what the contract names, and what lets a
            # fan-out proxy share one stream between clients if it wants to.
            headers={"Cache-Control": "no-cache"},
            ping=heartbeat,
            send_timeout=send_timeout,
        )
        self._subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        finished = False

        async def send_and_note(message: Message) -> None:
            nonlocal finished
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True

        try:
            await super().__call__(scope, receive, send_and_note)
        except SendTimeoutError:
            # The socket cannot take more, so the body cannot be finished either: uvicorn
            # closes the connection (and says the response was not completed).
            log.warning(
                "event stream of chat %d: a send waited %s s on a subscriber that stopped "
                "reading; disconnected",
                self._subscription.chat_id,
                self.send_timeout,
            )
            return
        finally:
            self._subscription.close()
        if not finished:
            # Ended by shutdown (or the client left, which makes this a no-op): the last chunk.
            with anyio.move_on_after(self.send_timeout):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
