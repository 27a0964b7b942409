"""Shared by the integration tests: direct SQL views of the tables, a fake clock, threads."""

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, text

from infrastructure.types import UTCDateTime

# Every thread of a test gives up after this long: a hang fails the test instead of the suite.
THREAD_TIMEOUT_SECONDS = 120.0


def count_rows(engine: Engine, table: str, where: str = "", **params: Any) -> int:
    """How many rows `table` holds (optionally `WHERE where`), read directly with SQL."""
    sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def execute(engine: Engine, sql: str, **params: Any) -> None:
    """Run one statement in its own transaction (used to corrupt read models on purpose)."""
    with engine.begin() as connection:
        connection.execute(text(sql), params)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    chat_id: int
    text: str
    created_at: datetime


def stored_messages(
    engine: Engine, chat_id: int, table: str = "message_views"
) -> list[StoredMessage]:
    """Every message of a chat in the chat's order (by id), straight from a table or view."""
    statement = text(
        f"SELECT id, chat_id, text, created_at FROM {table} WHERE chat_id = :chat_id ORDER BY id"
    ).columns(created_at=UTCDateTime)
    with engine.connect() as connection:
        rows = connection.execute(statement, {"chat_id": chat_id}).all()
    return [
        StoredMessage(id=row.id, chat_id=row.chat_id, text=row.text, created_at=row.created_at)
        for row in rows
    ]


def chat_views_snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    """The whole chat read model, as raw rows in a stable order."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM chat_views ORDER BY chat_id")).all()
    return [tuple(row) for row in rows]


def assert_non_decreasing(values: Sequence[datetime]) -> None:
    for earlier, later in itertools.pairwise(values):
        assert earlier <= later, f"{later} comes after {earlier} in the chat's order"


def assert_aware_utc(value: datetime) -> None:
    assert value.tzinfo is not None, f"{value} is naive"
    assert value.utcoffset() == timedelta(0), f"{value} is not in UTC"


class BackwardsClock:
    """A clock that goes back one second on every reading: aware UTC datetimes."""

    def __init__(self, start: datetime | None = None) -> None:
        self._next = start or datetime(2030, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
        self._lock = threading.Lock()
        self.readings: list[datetime] = []

    def __call__(self) -> datetime:
        with self._lock:
            now = self._next
            self._next = now - timedelta(seconds=1)
            self.readings.append(now)
            return now


@dataclass(frozen=True, slots=True)
class TimedResponse:
    """One HTTP exchange with the monotonic times it was sent and its answer arrived."""

    status_code: int
    body: Any
    sent: float
    received: float
    sent_text: str = ""


def timed_request(
    http: httpx.Client, method: str, url: str, json: Any = None, sent_text: str = ""
) -> TimedResponse:
    sent = time.monotonic()
    response = http.request(method, url, json=json)
    received = time.monotonic()
    body: Any = response.json() if response.content else None
    return TimedResponse(response.status_code, body, sent, received, sent_text)


def run_in_threads(workers: Sequence[Callable[[], None]]) -> None:
    """Start every worker at once (behind a barrier), wait for all, re-raise the first error.

    A worker still running after THREAD_TIMEOUT_SECONDS fails the test.
    """
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []
    errors_lock = threading.Lock()

    def wrap(worker: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout=THREAD_TIMEOUT_SECONDS)
                worker()
            except BaseException as exc:
                with errors_lock:
                    errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(worker), daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + THREAD_TIMEOUT_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    assert stuck == 0, f"{stuck} worker thread(s) still running after {THREAD_TIMEOUT_SECONDS} s"
    if errors:
        raise errors[0]
