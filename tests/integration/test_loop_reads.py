"""Reads on the event loop (infrastructure/loop_reads.py), on a real PostgreSQL: the same
results as the thread's path, a connection the server ended replaced, a statement whose
caller stopped waiting cancelled on the server, a bounded wait for a connection, and a
lost server reported as the synchronous path reports it (a 503)."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import uvloop
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from domain.errors import ChatNotFound
from domain.principals import LOCAL
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.database import PgConnection
from infrastructure.driver_reads import Read
from infrastructure.failures import is_unavailable
from infrastructure.loop_reads import APPLICATION_NAME, LoopReads, uses_loop_reads
from infrastructure.settings import Settings
from queries.get_chat import GetChat
from queries.get_history import GetHistory
from queries.list_chats import ListChats
from tests.integration.test_chat_document import write_chats
from tests.support.hint_database import terminate
from tests.support.servers import container_for

T = TypeVar("T")
SLEEP = "SELECT pg_sleep(30)"
SETTLE_SECONDS = 5.0


def on_loop(kind: str, work: Callable[[], Awaitable[T]]) -> T:
    factory = uvloop.new_event_loop if kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(work())  # type: ignore[arg-type]


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(postgres_url: str) -> str:
    migrations.upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def container(database: str) -> Iterator[Container]:
    container = container_for(database, loop_read_connections=2, db_pool_timeout=0.5)
    yield container
    container.shutdown_resources()


def loop_reads(container: Container) -> LoopReads:
    return LoopReads(container.settings(), container.read_engine().dialect)


def sessions(admin: PgConnection, state: str | None = None) -> list[tuple[int, str, str]]:
    """The loop's connections on the server: (pid, state, query)."""
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = %s"
            + ("" if state is None else " AND state = %s"),
            (APPLICATION_NAME,) if state is None else (APPLICATION_NAME, state),
        )
        return list(cursor.fetchall())


def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.02)


def sleeping(seconds: float = 30) -> Read[Any]:
    return Read(text(f"SELECT pg_sleep({seconds})"), {}, lambda rows: rows)


def test_the_loop_reads_what_the_thread_reads(container: Container, loop_kind: str) -> None:
    """The chat document's bytes, history pages and chat list pages: the same from the loop
    as from the thread, over chats written at times with and without a fraction (text on
    the loop's connections, datetimes on the thread's)."""
    chats = write_chats(container, random.Random(20261207), 30, longest_text=40)
    document, history, listing = (
        container.get_chat_document(),
        container.get_history(),
        container.list_chats(),
    )
    queries: list[tuple[Any, Any]] = [
        (handler, query)
        for chat in chats
        for limit in (1, 3, 20)
        for handler, query in (
            (document, GetChat(chat, limit, principal=LOCAL)),
            (history, GetHistory(chat, None, limit, principal=LOCAL)),
        )
    ]
    cursor = None
    for _ in range(5):  # the list, a page of 7 at a time, each page's cursor from the thread
        page = ListChats(7, cursor, principal=LOCAL)
        queries.append((listing, page))
        cursor = listing(page).next_cursor
    older = history(GetHistory(chats[-1], None, 2, principal=LOCAL)).next_before
    queries.append((history, GetHistory(chats[-1], older, 2, principal=LOCAL)))

    async def both() -> list[tuple[Any, Any]]:
        reads = loop_reads(container)
        try:
            return [(handler(q), await reads.run(handler.plan(q))) for handler, q in queries]
        finally:
            await reads.close()

    pairs = on_loop(loop_kind, both)
    assert len(pairs) == 30 * 3 * 2 + 5 + 1
    for thread_result, loop_result in pairs:
        assert loop_result == thread_result

    async def missing() -> None:
        reads = loop_reads(container)
        try:
            await reads.run(document.plan(GetChat(10**6, principal=LOCAL)))
        finally:
            await reads.close()

    with pytest.raises(ChatNotFound):
        on_loop(loop_kind, missing)


def test_a_connection_the_server_ended_is_replaced(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    one = Read(text("SELECT 1"), {}, lambda rows: rows)

    async def scenario() -> None:
        reads = loop_reads(container)
        try:
            assert await reads.run(one) == [(1,)]
            ((pid, _, _),) = sessions(admin)
            terminate(admin, pid)
            eventually(lambda: not sessions(admin))
            assert await reads.run(one) == [(1,)]  # not an error: a new connection
            assert [p for p, _, _ in sessions(admin)] != [pid]
        finally:
            await reads.close()

    on_loop(loop_kind, scenario)
    eventually(lambda: not sessions(admin))  # close() closed it


def test_a_read_whose_caller_stops_waiting_is_cancelled_on_the_server(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    async def scenario() -> None:
        reads = loop_reads(container)
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await reads.run(sleeping())
            # Cancelled, then closed: the server runs the sleep no longer.
            await asyncio.to_thread(eventually, lambda: not sessions(admin))
            assert await reads.run(Read(text("SELECT 2"), {}, lambda r: r)) == [(2,)]
        finally:
            await reads.close()

    on_loop(loop_kind, scenario)


def test_the_wait_for_a_connection_ends_after_the_pool_timeout(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    """Two connections (the container's LOOP_READ_CONNECTIONS), both busy: a third read
    waits DB_POOL_TIMEOUT (0.5 s), then fails as a full pool does (a 503)."""

    async def scenario() -> None:
        reads = loop_reads(container)
        busy = [asyncio.create_task(reads.run(sleeping(2))) for _ in range(2)]
        try:
            await asyncio.sleep(0.2)
            started = time.monotonic()
            with pytest.raises(PoolTimeout):
                await reads.run(Read(text("SELECT 3"), {}, lambda r: r))
            assert 0.4 <= time.monotonic() - started < 1.5
            assert len(sessions(admin, "active")) == 2
            assert [len(rows) for rows in await asyncio.gather(*busy)] == [1, 1]
            # The two connections serve on.
            assert await reads.run(Read(text("SELECT 3"), {}, lambda r: r)) == [(3,)]
            assert len(sessions(admin)) == 2
        finally:
            await reads.close()

    on_loop(loop_kind, scenario)


def test_a_server_that_cannot_be_reached_is_unavailable(loop_kind: str) -> None:
    settings = Settings(database_url="postgresql+psycopg2://chat@127.0.0.1:1/chat")
    reads = LoopReads(settings, create_engine(settings.database_url).dialect)

    async def scenario() -> None:
        await reads.run(Read(text("SELECT 1"), {}, lambda r: r))

    with pytest.raises(DBAPIError) as raised:
        on_loop(loop_kind, scenario)
    assert is_unavailable(raised.value)


def test_loop_reads_are_for_postgresql_without_replicas() -> None:
    pg = "postgresql+psycopg2://chat@127.0.0.1:5432/chat"
    assert uses_loop_reads(Settings(database_url=pg))
    assert not uses_loop_reads(Settings(database_url=pg, loop_read_connections=0))
    assert not uses_loop_reads(Settings(database_url="sqlite:///chat.db"))
    replica = "postgresql+psycopg2://chat@127.0.0.1:5433/chat"
    assert not uses_loop_reads(Settings(database_url=pg, read_database_url=replica))
