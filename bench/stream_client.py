"""Holds event streams open from one process and times every event as it arrives.

    python -m bench.stream_client URL FIRST_CHAT CHATS STREAMS

Stream i follows chat FIRST_CHAT + i % CHATS with `GET /chats/{id}/events`. It has to hold
a thousand streams beside the server on a 2-core machine without being the bottleneck, so each
stream is one asyncio Protocol (no task and no await per event), HTTP/1.1's chunked framing
and the SSE lines are split by hand, and of each event only `event:` and `id:` are read.
Arrival times are `time.monotonic()`, the system-wide clock the poster stamps its 201s with.

It talks to the harness in lines. It prints `ready N` once all N streams have answered 200
(or `failed: ...`, and exits 1); then it answers these commands, read from stdin:

    mark        forget the arrivals so far (a measured window starts); prints `marked`
    count       prints `count N D P`: message.posted events since the mark, streams dropped,
                heartbeat comments received
    dump PATH   writes the arrivals since the mark and the counters as JSON; prints `dumped`
    close       closes every stream and exits
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

OPENING_AT_ONCE = 100  # connections being opened concurrently, so as not to flood accept()
OPEN_TIMEOUT_S = 120.0
POSTED = b"message.posted"


def chat_ids(first_chat: int, chats: int, streams: int) -> list[int]:
    """The chat each stream follows: the streams spread over the chats equally, in turn."""
    return [first_chat + index % chats for index in range(streams)]


class Counters:
    """What every stream of the process has seen, for the harness's checks."""

    def __init__(self) -> None:
        self.events = 0  # message.posted since the last mark
        self.pings = 0  # heartbeat comments, since the start
        self.gaps = 0  # an event whose seq is not its stream's previous seq + 1
        self.duplicates = 0  # an event whose seq is not above its stream's previous one
        self.dropped = 0  # streams that the server or the network closed
        self.reasons: list[str] = []  # the first few reasons for a failed or dropped stream


class ChunkedDecoder:
    """The body of an HTTP/1.1 `Transfer-Encoding: chunked` response, fed as it arrives."""

    def __init__(self) -> None:
        self._raw = b""
        self._left = 0  # bytes of the current chunk's data still to come
        self._skip = 0  # bytes of the CRLF after a chunk's data still to come
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        raw, out, pos = self._raw + data, bytearray(), 0
        while pos < len(raw) and not self.finished:
            if self._left:
                take = min(self._left, len(raw) - pos)
                out += raw[pos : pos + take]
                pos += take
                self._left -= take
                if not self._left:
                    self._skip = 2
            elif self._skip:
                step = min(self._skip, len(raw) - pos)
                pos += step
                self._skip -= step
            else:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    break
                self._left = int(raw[pos:end].split(b";", 1)[0], 16)
                self.finished = self._left == 0
                pos = end + 2
        self._raw = raw[pos:]
        return bytes(out)


class StreamProtocol(asyncio.Protocol):
    """One `GET /chats/{id}/events`: the response head, then its events, timed."""

    def __init__(self, request: bytes, chat_id: int, counters: Counters) -> None:
        self.chat_id = chat_id
        self.arrivals: list[tuple[int, float]] = []  # (seq, arrival), since the last mark
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._request = request
        self._counters = counters
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._chunked: ChunkedDecoder | None = None
        self._pending = b""  # the start of a line whose end has not arrived yet
        self._name: bytes | None = None  # the event being read: its `event:` and `id:`
        self._seq: int | None = None
        self._last_seq: int | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self._chunked is None:
            data = self._read_head(data)
            if self._chunked is None:
                return
        body = self._chunked.feed(data)
        if body:
            self._events(body, now)
        if self._chunked.finished:
            self._drop("the server ended the stream")

    def _read_head(self, data: bytes) -> bytes:
        """Collects the response head; returns the body bytes that came after it."""
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = self._head[:end].decode("latin-1"), self._head[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split()[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        if status != 200 or headers.get("transfer-encoding") != "chunked":
            self._fail(f"chat {self.chat_id}: {status_line!r}, {rest[:200]!r}")
            return b""
        self._chunked = ChunkedDecoder()
        self.opened.set_result(None)
        return rest

    def _events(self, body: bytes, now: float) -> None:
        # Line by line: a heartbeat is a comment line with no blank line after it, counted as
        # it arrives. The service ends lines with CRLF; the SSE grammar allows LF alone too.
        *lines, self._pending = (self._pending + body).replace(b"\r\n", b"\n").split(b"\n")
        for line in lines:
            if line.startswith(b":"):
                self._counters.pings += 1
            elif line.startswith(b"event:"):
                self._name = line[6:].strip()
            elif line.startswith(b"id:"):
                self._seq = int(line[3:])
            elif not line:  # the end of an event
                if self._name == POSTED and self._seq is not None:
                    self._arrived(self._seq, now)
                self._name = self._seq = None

    def _arrived(self, seq: int, now: float) -> None:
        counters, last = self._counters, self._last_seq
        if last is not None and seq != last + 1:
            if seq <= last:
                counters.duplicates += 1
            else:
                counters.gaps += 1
        self._last_seq = seq
        self.arrivals.append((seq, now))
        counters.events += 1

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(RuntimeError(reason))
        self.close()

    def _drop(self, reason: str) -> None:
        if not self._closing:
            self._counters.dropped += 1
            if len(self._counters.reasons) < 5:
                self._counters.reasons.append(f"chat {self.chat_id}: {reason}")
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self._fail(f"chat {self.chat_id}: connection lost before the head: {exc}")
        self._drop(f"connection lost ({exc or 'closed by the server'})")

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()


class StreamClient:
    def __init__(self, url: str, first_chat: int, chats: int, streams: int) -> None:
        address = urlsplit(url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.chat_ids = chat_ids(first_chat, chats, streams)
        self.counters = Counters()
        self.streams: list[StreamProtocol] = []

    def _request(self, chat_id: int) -> bytes:
        return (
            f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        ).encode()

    async def open_all(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(OPENING_AT_ONCE)

        async def open_one(chat_id: int) -> None:
            async with gate:
                _, stream = await loop.create_connection(
                    lambda: StreamProtocol(self._request(chat_id), chat_id, self.counters),
                    self.host,
                    self.port,
                )
                self.streams.append(stream)
                await stream.opened

        async with asyncio.timeout(OPEN_TIMEOUT_S):
            await asyncio.gather(*(open_one(chat_id) for chat_id in self.chat_ids))

    def mark(self) -> None:
        for stream in self.streams:
            stream.arrivals = []
        self.counters.events = 0

    def dump(self, path: Path) -> None:
        counters = self.counters
        report = {
            "streams": [{"chat": s.chat_id, "arrivals": s.arrivals} for s in self.streams],
            "events": counters.events,
            "pings": counters.pings,
            "gaps": counters.gaps,
            "duplicates": counters.duplicates,
            "dropped": counters.dropped,
            "reasons": counters.reasons,
        }
        path.write_text(json.dumps(report))

    def close(self) -> None:
        for stream in self.streams:
            stream.close()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _commands() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve(client: StreamClient) -> int:
    commands = await _commands()
    try:
        await client.open_all()
    except (OSError, RuntimeError, TimeoutError) as error:
        reasons = "; ".join(client.counters.reasons) or str(error) or type(error).__name__
        _say(f"failed: {reasons}")
        return 1
    _say(f"ready {len(client.streams)}")
    while line := (await commands.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        if command == "mark":
            client.mark()
            _say("marked")
        elif command == "count":
            counters = client.counters
            _say(f"count {counters.events} {counters.dropped} {counters.pings}")
        elif command == "dump":
            client.dump(Path(argument))
            _say("dumped")
        elif command == "close":
            break
        else:
            _say(f"unknown command {command!r}")
    client.close()
    return 0


def main(argv: list[str]) -> int:
    url, first_chat, chats, streams = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    client = StreamClient(url, first_chat, chats, streams)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(client))
    return uvloop.run(serve(client))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
