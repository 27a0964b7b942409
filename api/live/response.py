"""The response of an event stream: its head, then the stream's own part of its body.

A stream sends by itself only until it is at the chat's end: the first page read for it
(the messages after its resume point), and then, if it fell behind its chat's writer (its
client stopped reading for a while) or joined too late for the writer's history, pages it
reads on by itself, as its caller. The rest is the writer's (api/live/writer.py). How it
ends decides the last bytes: FINISHED ends the body properly, so the client sees a complete
response and reconnects; CUT (a send that waited STREAM_SEND_TIMEOUT) leaves the connection
for uvicorn to close, as the body cannot be finished on a socket that takes nothing more.
"""

import asyncio
from collections.abc import Awaitable, Callable

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.live import sse
from api.live.chats import LiveChats
from api.live.news import UNAVAILABLE, News
from api.live.stream import Outcome, Stream
from domain.errors import ChatNotFound, NotAMember

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    # no-cache, not no-store: what the contract names, and what lets a fan-out proxy share
    # one stream between clients if it wants to.
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    # nginx passes each event on at once rather than buffering the response.
    (b"x-accel-buffering", b"no"),
]
# How long a stream waits before it reads again while the database is unreachable.
OUTAGE_RETRY = 1.0
END = {"type": "http.response.body", "body": b"", "more_body": False}

# The stream's own reads: the news after a position, as its caller.
Read = Callable[[int, int | None], Awaitable[News]]


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        stream: Stream,
        live: LiveChats,
        first: News,
        read: Read,
        release: Callable[[], None],
    ) -> None:
        # Not Response.__init__: a stream has no length.
        self.status_code = 200
        self.background: BackgroundTask | None = None
        self.raw_headers = list(HEADERS)
        self._stream = stream
        self._live = live
        self._first = first
        self._read = read
        self._release = release  # the caller's stream slot (api/stream_slots.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self._stream
        listening = asyncio.ensure_future(until_disconnect(receive, stream))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope["method"] == "HEAD":  # the head alone: no stream
                await send(END)
                return
            stream.send = send
            outcome = await self._follow()
        finally:
            listening.cancel()
            self._live.close(stream)
            self._release()
        if outcome is Outcome.FINISHED:
            await self._finish()

    async def _follow(self) -> Outcome:
        stream, news = self._stream, self._first
        stream.after, stream.member_position = news.after, news.member_position
        await stream.write_own(sse.RETRY + b"".join(piece.data for piece in news.pieces))
        at_end = news.at_end
        loop = asyncio.get_running_loop()
        while stream.outcome is None:
            if at_end and self._live.join(stream):
                outcome = await stream.wait()
                if outcome is not None:
                    return outcome
            if stream.expires_at is not None and stream.expires_at <= loop.time():
                return Outcome.FINISHED  # the client comes back with a new token
            stream.read_began = loop.time()
            try:
                news = await self._read(stream.after, stream.member_position)
            except NotAMember:
                assert stream.user_id is not None  # only a user's reads check membership
                await stream.write_own(sse.member_removed(stream.chat_id, stream.user_id))
                return Outcome.FINISHED
            except ChatNotFound:
                await stream.write_own(sse.chat_deleted(stream.chat_id))
                return Outcome.FINISHED
            except UNAVAILABLE:
                # Not logged per stream: the requests failing meanwhile log the outage.
                await asyncio.sleep(OUTAGE_RETRY)
                at_end = False
                continue
            if news.pieces:
                await stream.write_own(b"".join(piece.data for piece in news.pieces))
            stream.after, stream.member_position = news.after, news.member_position
            at_end = news.at_end
        return stream.outcome

    async def _finish(self) -> None:
        """The last chunk of the body, once what was written before it has gone out."""
        stream, timeout = self._stream, self._live.send_timeout
        if stream.sending is not None:
            await asyncio.wait([stream.sending], timeout=timeout)
            if stream.sending is not None:
                stream.sending.cancel()
                return
        assert stream.send is not None
        stream.write(END)
        if stream.sending is not None:
            await asyncio.wait([stream.sending], timeout=timeout)


async def until_disconnect(receive: Receive, stream: Stream) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.end(Outcome.GONE)
