"""Reads on the event loop (infrastructure/loop_database.py), on a real PostgreSQL: the same
results as the thread's path, a connection the server ended replaced, a statement whose
caller stopped waiting cancelled on the server, a bounded wait for a connection, and a
lost server reported as the synchronous path reports it (a 503)."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import uvloop
from dependency_injector import providers
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from commands.create_chat import CreateChat
from commands.post_message import PostMessage, PostMessageResult
from commands.put_member import PutMember
from domain.errors import ChatNotFound
from domain.events import ChatDeleted, MessagePosted
from domain.principals import LOCAL, user
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.database import PgConnection, connect
from infrastructure.failures import QUERY_CANCELED, is_unavailable, sqlstate
from infrastructure.hints import Publisher
from infrastructure.loop_database import APPLICATION_NAME, LoopDatabase, uses_loop_database
from infrastructure.plans import DEADLINE, IN_TIME, Read, Write
from infrastructure.rebuild import rebuild_read_models
from infrastructure.settings import Settings
from queries.get_chat import GetChat
from queries.get_history import GetHistory
from queries.get_message import GetMessage
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
    container = container_for(database, loop_connections=2, db_pool_timeout=0.5)
    yield container
    container.shutdown_resources()


def loop_database(container: Container) -> LoopDatabase:
    settings, dialect = container.settings(), container.read_engine().dialect
    return LoopDatabase(settings, dialect, container.hint_publisher())


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


def later(seconds: float = 60) -> float:
    """A deadline `seconds` from now, in the running loop's time."""
    return asyncio.get_running_loop().time() + seconds


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
        reads = loop_database(container)
        try:
            return [(handler(q), await reads.read(handler.plan(q))) for handler, q in queries]
        finally:
            await reads.close()

    pairs = on_loop(loop_kind, both)
    assert len(pairs) == 30 * 3 * 2 + 5 + 1
    for thread_result, loop_result in pairs:
        assert loop_result == thread_result

    async def missing() -> None:
        reads = loop_database(container)
        try:
            await reads.read(document.plan(GetChat(10**6, principal=LOCAL)))
        finally:
            await reads.close()

    with pytest.raises(ChatNotFound):
        on_loop(loop_kind, missing)


def test_each_statement_is_planned_once_per_connection(container: Container) -> None:
    """The hot statements' plans are made once per connection and kept (GENERIC_PLANS): left
    to choose, PostgreSQL planned the chat's statement anew on every run."""
    chat = container.create_chat()(CreateChat(title="planned", principal=LOCAL)).chat_id
    post = container.post_message()
    plans: list[Read[Any]] = [
        container.get_chat_document().plan(GetChat(chat, principal=LOCAL)),
        container.get_history().plan(GetHistory(chat, None, 5, principal=LOCAL)),
        container.list_chats().plan(ListChats(5, principal=LOCAL)),
    ]
    runs = 12  # past the 5 runs after which PostgreSQL weighs a generic plan
    kept = Read(
        text(
            "SELECT count(*), sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements"
            " WHERE statement NOT LIKE '%pg_prepared_statements%'"
        ),
        {},
        lambda rows: rows[0],
    )

    async def run() -> tuple[int, int, int]:
        reads = loop_database(container)
        try:
            for n in range(runs):  # one at a time: all on the connection last given back
                for plan in plans:
                    await reads.read(plan)
                command = PostMessage(chat_id=chat, text=f"message {n}", principal=LOCAL)
                write = post.plan(command)
                assert write is not None
                await reads.write(write, later())
            count, generic, custom = await reads.read(kept)
            return int(count), int(generic), int(custom)
        finally:
            await reads.close()

    statements, generic, custom = on_loop("asyncio", run)
    assert (statements, custom) == (len(plans) + 1, 0)
    assert generic == (len(plans) + 1) * runs


def test_a_connection_the_server_ended_is_replaced(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    one = Read(text("SELECT 1"), {}, lambda rows: rows)

    async def scenario() -> None:
        reads = loop_database(container)
        try:
            assert await reads.read(one) == [(1,)]
            ((pid, _, _),) = sessions(admin)
            terminate(admin, pid)
            eventually(lambda: not sessions(admin))
            assert await reads.read(one) == [(1,)]  # not an error: a new connection
            assert [p for p, _, _ in sessions(admin)] != [pid]
        finally:
            await reads.close()

    on_loop(loop_kind, scenario)
    eventually(lambda: not sessions(admin))  # close() closed it


def test_a_read_whose_caller_stops_waiting_is_cancelled_on_the_server(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    async def scenario() -> None:
        reads = loop_database(container)
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await reads.read(sleeping())
            # Cancelled, then closed: the server runs the sleep no longer.
            await asyncio.to_thread(eventually, lambda: not sessions(admin))
            assert await reads.read(Read(text("SELECT 2"), {}, lambda r: r)) == [(2,)]
        finally:
            await reads.close()

    on_loop(loop_kind, scenario)


def test_the_wait_for_a_connection_ends_after_the_pool_timeout(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    """Two connections (the container's LOOP_CONNECTIONS), both busy: a third read
    waits DB_POOL_TIMEOUT (0.5 s), then fails as a full pool does (a 503)."""

    async def scenario() -> None:
        reads = loop_database(container)
        busy = [asyncio.create_task(reads.read(sleeping(2))) for _ in range(2)]
        try:
            await asyncio.sleep(0.2)
            started = time.monotonic()
            with pytest.raises(PoolTimeout):
                await reads.read(Read(text("SELECT 3"), {}, lambda r: r))
            assert 0.4 <= time.monotonic() - started < 1.5
            assert len(sessions(admin, "active")) == 2
            assert [len(rows) for rows in await asyncio.gather(*busy)] == [1, 1]
            # The two connections serve on.
            assert await reads.read(Read(text("SELECT 3"), {}, lambda r: r)) == [(3,)]
            assert len(sessions(admin)) == 2
        finally:
            await reads.close()

    on_loop(loop_kind, scenario)


def test_a_server_that_cannot_be_reached_is_unavailable(loop_kind: str) -> None:
    settings = Settings(database_url="postgresql+psycopg2://chat@127.0.0.1:1/chat")
    engine = create_engine(settings.database_url)
    reads = LoopDatabase(settings, engine.dialect, Publisher(settings.database_url))

    async def scenario() -> None:
        await reads.read(Read(text("SELECT 1"), {}, lambda r: r))

    with pytest.raises(DBAPIError) as raised:
        on_loop(loop_kind, scenario)
    assert is_unavailable(raised.value)


def test_loop_database_are_for_postgresql_without_replicas() -> None:
    pg = "postgresql+psycopg2://chat@127.0.0.1:5432/chat"
    assert uses_loop_database(Settings(database_url=pg))
    assert not uses_loop_database(Settings(database_url=pg, loop_connections=0))
    assert not uses_loop_database(Settings(database_url="sqlite:///chat.db"))
    replica = "postgresql+psycopg2://chat@127.0.0.1:5433/chat"
    assert not uses_loop_database(Settings(database_url=pg, read_database_url=replica))


# --- writes: a post on the loop ------------------------------------------------------------


def read_models(admin: PgConnection) -> list[list[tuple[Any, ...]]]:
    """Every row of the chat views and the member views, in a stable order."""
    with admin.cursor() as cursor:
        tables = []
        for query in (
            "SELECT * FROM chat_views ORDER BY chat_id",
            "SELECT * FROM chat_member_views ORDER BY chat_id, user_id",
        ):
            cursor.execute(query)
            tables.append(list(cursor.fetchall()))
        return tables


class Backwards:
    """A clock that now and then goes back: the post's time must not."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._now = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self._now += timedelta(microseconds=self._rng.randint(-2_000_000, 3_000_000))
        return self._now


def test_a_post_on_the_loop_is_the_post_of_the_thread(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    """Posts to chats, each on the loop or in a thread at random, by a service and by a
    member: one seq after another in each chat, times that never go back, each result the
    message stored, and read models that a rebuild from the write model leaves as they are.
    A post by a user who is not a member, or to a chat that does not exist, changes nothing
    and leaves its connection to serve on."""
    rng = random.Random(20261207)
    with container.clock.override(providers.Object(Backwards(rng))):
        create, post, get = (
            container.create_chat(),
            container.post_message(),
            container.get_message(),
        )
        chats = [create(CreateChat(title=f"chat {n}", principal=LOCAL)).chat_id for n in range(6)]
        container.put_member()(PutMember(chats[0], "alice", "member", principal=LOCAL))
        commands = [
            PostMessage(chat_id=rng.choice(chats), text=f"message {n}", principal=LOCAL)
            for n in range(150)
        ] + [
            PostMessage(chat_id=chats[0], text=f"alice {n}", principal=user("alice"))
            for n in range(10)
        ]
        rng.shuffle(commands)

        async def posts() -> list[tuple[str, PostMessageResult]]:
            database = loop_database(container)
            try:
                done = []
                for command in commands:
                    if rng.random() < 0.5:
                        plan = post.plan(command)
                        assert plan is not None
                        done.append(("loop", await database.write(plan, later())))
                    else:
                        done.append(("thread", await asyncio.to_thread(post, command)))
                ((pid, _, _),) = sessions(admin)
                for missing in (
                    PostMessage(chat_id=chats[1], text="not a member", principal=user("bob")),
                    PostMessage(chat_id=10**6, text="no such chat", principal=LOCAL),
                ):
                    plan = post.plan(missing)
                    assert plan is not None
                    with pytest.raises(ChatNotFound):
                        await database.write(plan, later())
                assert [(p, state) for p, state, _ in sessions(admin)] == [(pid, "idle")]
                return done
            finally:
                await database.close()

        before = read_models(admin)
        done = on_loop(loop_kind, posts)
    assert {way for way, _ in done} == {"loop", "thread"}
    last_seq: dict[int, int] = {}
    last_time: dict[int, datetime] = {}
    for (way, posted), command in zip(done, commands, strict=True):
        chat = command.chat_id
        assert posted.seq == last_seq.get(chat, 0) + 1, way
        assert posted.created_at >= last_time.get(chat, posted.created_at), way
        last_seq[chat], last_time[chat] = posted.seq, posted.created_at
        assert (posted.text, posted.author) == (
            command.text,
            None if command.principal is LOCAL else "alice",
        )
        stored = get(GetMessage(chat, posted.message_id, principal=LOCAL))
        assert (stored.seq, stored.text, stored.created_at, stored.author) == (
            posted.seq,
            posted.text,
            posted.created_at,
            posted.author,
        ), way
    projected = read_models(admin)
    assert projected != before
    rebuild_read_models(container.write_engine())
    assert read_models(admin) == projected


@pytest.mark.parametrize("ending", ["the caller stops waiting", "the deadline passes"])
def test_a_post_held_behind_a_lock_and_given_up_is_rolled_back(
    container: Container, database: str, admin: PgConnection, loop_kind: str, ending: str
) -> None:
    """A post waiting behind a lock on its chat. When its caller stops waiting: cancelled on
    the server. When its caller still waits (no cancel comes) but its deadline passes
    before the lock is gone: written, then refused by its IN_TIME guard, in the one
    statement. Either way its transaction rolls back: nothing stored, nothing hinted, its
    seq never used."""
    chat = container.create_chat()(CreateChat(title="locked", principal=LOCAL)).chat_id
    post = container.post_message()
    plan = post.plan(PostMessage(chat_id=chat, text="never", principal=LOCAL))
    assert plan is not None
    woken: list[int] = []

    async def scenario() -> None:
        loop = loop_database(container)
        publisher = container.hint_publisher()
        publisher.hints.loop = asyncio.get_running_loop()
        publisher.hints.follow(chat, Recorder(woken))
        locker = connect(database, 5, "test locker")
        locker.autocommit = False
        try:
            with locker.cursor() as cursor:
                cursor.execute("SELECT id FROM chats WHERE id = %s FOR UPDATE", (chat,))
            if ending == "the caller stops waiting":
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await loop.write(plan, later())
                await asyncio.to_thread(eventually, lambda: not sessions(admin))
                locker.rollback()
            else:
                writing = asyncio.ensure_future(loop.write(plan, later(0.3)))
                await asyncio.sleep(0.6)
                assert not writing.done()  # still waiting for the lock
                locker.rollback()
                with pytest.raises(DBAPIError) as refused:
                    await writing
                assert sqlstate(refused.value) == QUERY_CANCELED
            again = post.plan(PostMessage(chat_id=chat, text="later", principal=LOCAL))
            assert again is not None
            assert (await loop.write(again, later())).seq == 1  # the first seq: none was used
            await asyncio.sleep(0.05)
        finally:
            locker.close()
            publisher.hints.loop = None
            await loop.close()

    on_loop(loop_kind, scenario)
    with admin.cursor() as cursor:
        cursor.execute("SELECT text FROM messages WHERE chat_id = %s", (chat,))
        assert cursor.fetchall() == [("later",)]
        cursor.execute("SELECT message_count FROM chat_views WHERE chat_id = %s", (chat,))
        assert cursor.fetchall() == [(1,)]
    assert woken == [1]  # the later post's seq only


def test_the_server_clock_is_read_again_when_the_guard_refuses_in_time(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    """The loop reads the server's clock on the connection before its first write: on this
    machine, the same clock, so its offset is the wall clock's from the loop's. Should the
    server's clock step forward after (here: the reading made an hour slow), the guard
    refuses a write that the loop's clock says is in time; the loop reads the clock again
    and the write is stored, once."""
    chat = container.create_chat()(CreateChat(title="clock", principal=LOCAL)).chat_id
    post = container.post_message()

    def plan(text: str) -> Write[PostMessageResult]:
        planned = post.plan(PostMessage(chat_id=chat, text=text, principal=LOCAL))
        assert planned is not None
        return planned

    async def scenario() -> list[int]:
        loop = loop_database(container)
        try:
            seqs = [(await loop.write(plan("first"), later())).seq]
            (pooled,) = loop._idle
            assert pooled.clock is not None
            wall_offset = time.time() - asyncio.get_running_loop().time()
            assert abs(pooled.clock.offset - wall_offset) < 0.05
            pooled.clock = replace(pooled.clock, offset=pooled.clock.offset - 3600)
            seqs.append((await loop.write(plan("second"), later())).seq)
            assert loop._idle[0].clock is not None
            assert abs(loop._idle[0].clock.offset - wall_offset) < 0.05
            return seqs
        finally:
            await loop.close()

    assert on_loop(loop_kind, scenario) == [1, 2]
    with admin.cursor() as cursor:
        cursor.execute("SELECT seq, text FROM messages WHERE chat_id = %s ORDER BY seq", (chat,))
        assert cursor.fetchall() == [(1, "first"), (2, "second")]


class Recorder:
    """A follower of a chat's hints (as api/live's writer is): the seqs it is handed."""

    def __init__(self, seqs: list[int]) -> None:
        self._seqs = seqs

    def wake(self, arrivals: Sequence[MessagePosted] | None = None) -> None:
        assert arrivals is not None  # this process's commit hands its messages along
        self._seqs.extend(message.seq for message in arrivals)


def test_a_write_that_collides_runs_again(
    container: Container, admin: PgConnection, loop_kind: str
) -> None:
    """PostgreSQL rolled the first run back over a deadlock: the write runs again, as a
    thread's command does (Retrying), and only the second run's work is kept."""
    with admin.cursor() as cursor:
        cursor.execute(
            "CREATE SEQUENCE IF NOT EXISTS collisions; CREATE TABLE IF NOT EXISTS runs (n int);"
            "CREATE OR REPLACE FUNCTION collide_once() RETURNS int AS $$ BEGIN"
            " INSERT INTO runs VALUES (1);"
            " IF nextval('collisions') = 1 THEN"
            "  RAISE EXCEPTION 'collided' USING ERRCODE = '40P01'; END IF;"
            " RETURN 7; END $$ LANGUAGE plpgsql"
        )
    admin.commit()
    statement = select(func.collide_once()).where(IN_TIME)
    write = Write(statement, {DEADLINE: None}, lambda row: (ChatDeleted(10**6), row))

    async def scenario() -> Any:
        database = loop_database(container)
        try:
            return await database.write(write, later())
        finally:
            await database.close()

    assert on_loop(loop_kind, scenario) == (7,)
    with admin.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchall() == [(1,)]
        cursor.execute("DROP TABLE runs; DROP SEQUENCE collisions; DROP FUNCTION collide_once")
    admin.commit()
