"""Shared by the integration tests: direct SQL views of the tables, ordering checks, timings."""

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, text

from infrastructure.types import UTCDateTime


def execute(engine: Engine, sql: str, **params: Any) -> None:
    """Run one statement in its own transaction (used to corrupt read models on purpose)."""
    with engine.begin() as connection:
        connection.execute(text(sql), params)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    chat_id: int
    seq: int
    text: str
    created_at: datetime


def stored_messages(
    engine: Engine, chat_id: int, table: str = "message_views"
) -> list[StoredMessage]:
    """Every message of a chat in the chat's order (by id), straight from a table or view."""
    statement = text(
        f"SELECT id, chat_id, seq, text, created_at FROM {table} "
        "WHERE chat_id = :chat_id ORDER BY id"
    ).columns(created_at=UTCDateTime)
    with engine.connect() as connection:
        rows = connection.execute(statement, {"chat_id": chat_id}).all()
    return [
        StoredMessage(
            id=row.id, chat_id=row.chat_id, seq=row.seq, text=row.text, created_at=row.created_at
        )
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
