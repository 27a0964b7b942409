"""The event streams of one process, by chat: each chat followed has one writer while any of
its streams is open, and nothing is kept for a chat nobody follows. One per app, on its loop."""

import asyncio
from collections.abc import Callable

from api.live.news import NewsReader
from api.live.stream import Outcome, Stream
from api.live.writer import ChatWriter
from domain.principals import Principal
from infrastructure.hints import LocalHints


class LiveChats:
    def __init__(self, news: NewsReader, heartbeat: float, send_timeout: float) -> None:
        self._news = news
        self._heartbeat = heartbeat
        self.send_timeout = send_timeout
        # The process's hints, and how long a writer may go without a read: from `start`.
        self._hints = LocalHints()
        self._read_interval: Callable[[], float] = lambda: heartbeat
        self.closing = False  # shutting down: no new stream
        self._writers: dict[int, ChatWriter] = {}
        self.count = 0  # streams open

    def open(self, chat_id: int, principal: Principal) -> Stream:
        """A new stream of the chat, followed from now on: call before its first read, and
        `close` it however it ends."""
        stream = Stream(chat_id, principal, asyncio.get_running_loop())
        writer = self._writers.get(chat_id)
        if writer is None:
            writer = ChatWriter(
                chat_id,
                self._news,
                self._heartbeat,
                self.send_timeout,
                self._read_interval,
            )
            self._writers[chat_id] = writer
            self._hints.follow(chat_id, writer)
        writer.add(stream)
        self.count += 1
        return stream

    def join(self, stream: Stream) -> bool:
        """The stream has read to the chat's end: see ChatWriter.join."""
        return self._writers[stream.chat_id].join(stream)

    def close(self, stream: Stream) -> None:
        writer = self._writers.get(stream.chat_id)
        if writer is None or stream not in writer.streams:
            return
        writer.remove(stream)
        self.count -= 1
        if not writer.streams:
            writer.close()
            del self._writers[stream.chat_id]
            self._hints.unfollow(stream.chat_id)

    def start(self, hints: LocalHints, read_interval: Callable[[], float]) -> None:
        """In the app's lifespan, with that lifespan's hints (a lifespan started again after a
        shutdown has a new publisher): streams may open."""
        self._hints, self._read_interval = hints, read_interval
        self.closing = False

    def finish_all(self) -> None:
        """Shutdown: every stream ends properly, for its client to reconnect elsewhere."""
        self.closing = True
        for writer in tuple(self._writers.values()):
            for stream in tuple(writer.streams):
                stream.end(Outcome.FINISHED)
