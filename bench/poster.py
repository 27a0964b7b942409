"""Posts messages at a steady rate, from a process of its own, and times each 201.

    python -m bench.poster URL FIRST_CHAT CHATS RATE SECONDS OUTPUT

Post i goes to chat FIRST_CHAT + i % CHATS at start + i / RATE (an open-loop schedule: a
slow answer does not delay the posts after it, as long as a connection is free), on one of
a few keep-alive connections. For each 201 it records the chat, the message's seq and
`time.monotonic()` when the whole response had been read: the instant a delivery to a stream
is timed from. OUTPUT gets them as JSON, with the run's counts and this process's CPU time.
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

# Enough that a free connection is there for every slot even when posts take 300 ms: the
# schedule, not the server's answers, sets the rate.
CONNECTIONS = 32
BODY = json.dumps({"text": "A delivery-latency message, about as long as a chat line."}).encode()
START_DELAY_S = 0.2  # the connections are opened before the schedule starts


class Poster:
    def __init__(self, url: str, first_chat: int, chats: int) -> None:
        address = urlsplit(url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.first_chat, self.chats = first_chat, chats
        self.posted: list[tuple[int, int, float]] = []  # (chat, seq, 201 read at)
        self.failed: list[str] = []
        self.late_s: list[float] = []  # how long after its slot each post was sent
        self.start = 0.0  # the first post's slot

    def _request(self, chat_id: int) -> bytes:
        head = (
            f"POST /chats/{chat_id}/messages/ HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        )
        return head.encode() + BODY

    async def _post(
        self,
        chat_id: int,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        free: "asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]",
    ) -> None:
        reader, writer = connection
        writer.write(self._request(chat_id))
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
        answered = time.monotonic()
        free.put_nowait(connection)
        if status == 201:
            self.posted.append((chat_id, int(json.loads(body)["seq"]), answered))
        else:
            self.failed.append(f"chat {chat_id}: {status} {body[:200]!r}")

    async def run(self, rate: float, seconds: float) -> None:
        free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for _ in range(CONNECTIONS):
            free.put_nowait(await asyncio.open_connection(self.host, self.port))
        posts = round(rate * seconds)
        start = self.start = time.monotonic() + START_DELAY_S
        running = set()
        for index in range(posts):
            slot = start + index / rate
            if (wait := slot - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            connection = await free.get()
            self.late_s.append(max(0.0, time.monotonic() - slot))
            chat_id = self.first_chat + index % self.chats
            task = asyncio.create_task(self._post(chat_id, connection, free))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)


def main(argv: list[str]) -> int:
    url, first_chat, chats = argv[0], int(argv[1]), int(argv[2])
    rate, seconds, output = float(argv[3]), float(argv[4]), Path(argv[5])
    poster = Poster(url, first_chat, chats)
    asyncio.run(poster.run(rate, seconds))
    last_answer = max((answered for _, _, answered in poster.posted), default=poster.start)
    report = {
        "posted": poster.posted,
        "failed": poster.failed,
        "late_s": sorted(poster.late_s),
        "wall_s": last_answer - poster.start,  # from the first slot to the last 201
        "cpu_s": time.process_time(),
    }
    output.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
