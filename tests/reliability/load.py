"""Shared by the reliability tests: recorded HTTP exchanges, database and process probes."""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from tests.support.servers import new_client


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request a client thread sent, what came back, and when (monotonic seconds)."""

    method: str
    path: str
    chat_id: int
    text: str | None  # the text posted, for a POST of a message
    status: int | None  # None: no HTTP answer at all (see `error`)
    retry_after: str | None
    body: Any
    sent: float
    received: float
    error: str | None = None

    @property
    def duration(self) -> float:
        return self.received - self.sent

    @property
    def is_post(self) -> bool:
        return self.method == "POST"

    @property
    def posted(self) -> str:
        """The text a POST of a message sent."""
        assert self.text is not None, self
        return self.text

    def describe(self) -> str:
        return (
            f"{self.method} {self.path} -> {self.status} {self.error or ''} "
            f"after {self.duration:.2f} s: {str(self.body)[:200]}"
        )


def exchange(
    http: httpx.Client,
    method: str,
    path: str,
    chat_id: int,
    json: Any = None,
    summarize: Callable[[Any], Any] | None = None,
) -> Exchange:
    """Send one request and record it; a transport error is recorded, not raised.

    `summarize` keeps only what a test needs of a successful answer's body, so that the
    records of a long run do not weigh on the process's memory.
    """
    posted = json.get("text") if isinstance(json, dict) else None
    sent = time.monotonic()
    try:
        response = http.request(method, path, json=json)
    except httpx.HTTPError as exc:
        received = time.monotonic()
        return Exchange(method, path, chat_id, posted, None, None, None, sent, received, repr(exc))
    received = time.monotonic()
    try:
        body: Any = response.json() if response.content else None
    except ValueError:
        body = response.text
    if summarize is not None and response.is_success:
        body = summarize(body)
    return Exchange(
        method,
        path,
        chat_id,
        posted,
        response.status_code,
        response.headers.get("Retry-After"),
        body,
        sent,
        received,
    )


class Recorder:
    """Collects exchanges from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []

    def add(self, record: Exchange) -> None:
        with self._lock:
            self._exchanges.append(record)

    def all(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)


def create_chat(base_url: str, title: str) -> int:
    with new_client(base_url) as http:
        response = http.post("/chats/", json={"title": title})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def stored_messages(engine: Engine) -> list[tuple[int, int, str]]:
    """Every row of the write model's message log: (id, chat_id, text)."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, chat_id, text FROM messages")).all()
    return [(int(row.id), int(row.chat_id), str(row.text)) for row in rows]


def database_name(url: str) -> str:
    name = make_url(url).database
    assert name is not None
    return name


SERVER_CONNECTIONS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = :database "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def count_connections(connection: Connection, database: str) -> int:
    """Client sessions the PostgreSQL server holds open on `database`, but the asker's own."""
    count = connection.execute(SERVER_CONNECTIONS, {"database": database}).scalar_one()
    return int(count)


def server_connections(engine: Engine, database: str) -> int:
    with engine.connect() as connection:
        return count_connections(connection, database)


def rss_bytes() -> int:
    """This process's resident set size (VmRSS), which includes the in-process server."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                kib = int(line.split()[1])
                return kib * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    """File descriptors this process holds open: sockets (HTTP and database) among them."""
    return len(os.listdir("/proc/self/fd"))


MIB = 1024 * 1024
