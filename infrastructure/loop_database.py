"""The hot paths' statements on the event loop: psycopg2's asynchronous connections, no thread.

A request that runs its handler in a thread pays for the hop there and back (the thread
limiter, the worker queue, GIL hand-offs while the query is in flight): more than the query
itself costs the process (docs/performance.md, issue 25). Here the statement of a `Read`
or a `Write` (infrastructure/plans.py) is sent on one of a few connections in psycopg2's
asynchronous mode, owned by the loop: the loop watches the socket (`add_reader`/
`add_writer` as `poll()` asks) and builds the result from the rows when they arrive. The
statement text, its parameters and the row-to-result code are the plan's, the same as the
thread's path (ReadTargets.run, UnitOfWork.run), which scripts, the CLI, SQLite and
replicas keep.

A write is one statement, its projection folded in, a transaction of its own: one round
trip (a thread's unit of work takes three: BEGIN, the statement, COMMIT, which it sends only
while its request still waits). So that a write answered 503 (a frozen server, a lock held
past the deadline) is never committed after all, the statement's IN_TIME guard rolls it back
once its rows are written if the request's deadline has passed by the server's clock
(infrastructure/server_clock.py). Once committed, its chat is hinted, as the unit of work
does.

What the synchronous path does, this does too: a connection found closed by the server
while idle is replaced before use; a lost one is dropped; a driver error is a DBAPIError
(so that a lost connection or a stopping server is a 503); the wait for a connection ends
after DB_POOL_TIMEOUT (a 503); and a statement whose request stops waiting (its deadline,
or the client gone at shutdown) is cancelled (infrastructure/cancellation.py) and its
connection closed, never reused while the cancel may still land: a write's transaction
rolls back with it, unless it had committed already.
"""

import asyncio
import hashlib
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]
from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from domain.events import DomainEvent
from infrastructure.cancellation import CancelKey
from infrastructure.database import (
    LIVENESS_OPTIONS,
    PgConnection,
    connect_params,
    has_input,
    is_sqlite,
    session_options,
)
from infrastructure.driver_reads import bound
from infrastructure.failures import (
    ATTEMPTS,
    QUERY_CANCELED,
    READ_ONLY_SQL_TRANSACTION,
    conflict,
    pause_before,
    sqlstate,
)
from infrastructure.hints import Publisher
from infrastructure.plans import DEADLINE, Read, Result, Row, Write
from infrastructure.server_clock import MARGIN, ServerClock
from infrastructure.server_clock import QUERY as SERVER_TIME
from infrastructure.settings import Settings
from infrastructure.unit_of_work import publish_committed

APPLICATION_NAME = "chatapi loop connections"
log = logging.getLogger("chatapi")
Done = TypeVar("Done")


# timestamptz as PostgreSQL's text, 'YYYY-MM-DD HH:MM:SS[.ffffff]+00' (the session is in
# UTC): written into JSON as it is (get_chat_document.json_time), or parsed by fromisoformat
# (types.utc), cheaper than psycopg2's datetime with its tzinfo, then moved to UTC.
TIMESTAMPTZ_OID = 1184
_TIME_AS_TEXT = psycopg2.extensions.new_type(
    (TIMESTAMPTZ_OID,), "TIMESTAMPTZ_AS_TEXT", lambda value, cursor: value
)

# A prepared statement's plan, made once per connection and kept. Left to choose, PostgreSQL
# plans the chat's and a history page's statements anew on every run (its generic plan's
# estimate for LIMIT $n looks dearer than a plan for the values), which took as long as
# running them: ~110 of a GET's ~210 us on the server (docs/performance.md). Every statement
# here is a keyset read or a write by primary key, whose plan does not depend on the values.
GENERIC_PLANS = "-c plan_cache_mode=force_generic_plan"


def uses_loop_database(settings: Settings) -> bool:
    """On PostgreSQL, unless turned off or reads go to replicas (ReadTargets chooses then)."""
    return (
        settings.loop_connections > 0
        and not settings.read_database_url
        and not is_sqlite(settings.database_url)
    )


@dataclass(slots=True)
class Pooled:
    connection: PgConnection
    cancel_key: CancelKey  # taken as it is made: what cancels its statement from a thread
    prepared: set[str] = field(default_factory=set)  # the statements PREPAREd on it
    clock: ServerClock | None = None  # its server's, read before its first write


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement as a prepared one: its name, its text with $1.. for its parameters, and
    the parameters' names in that order."""

    name: str
    text: str
    names: tuple[str, ...]
    execute: str  # EXECUTE name(%s, ...)


PARAMETER = re.compile(r"%\((\w+)\)s")


@cache
def prepared(sql: str) -> Prepared:
    """`sql` (psycopg2's %(name)s style, as SQLAlchemy compiles it) as a prepared statement:
    parsed and planned by the server once per connection, and each run sends a few bytes
    instead of the statement (and psycopg2 quotes a few values into them, not into it)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    text = PARAMETER.sub(number, sql).replace("%%", "%")
    name = "chatapi_" + hashlib.sha1(sql.encode()).hexdigest()[:16]
    arguments = f"({', '.join(['%s'] * len(names))})" if names else ""
    return Prepared(name, text, tuple(names), f"EXECUTE {name}{arguments}")


class LoopDatabase:
    """Up to `size` connections of one event loop; `read` and `write` from that loop only."""

    def __init__(self, settings: Settings, dialect: Dialect, publisher: Publisher) -> None:
        self._dialect = dialect
        self._publisher = publisher
        self._params = connect_params(settings.database_url) | {
            "connect_timeout": settings.db_connect_timeout,
            "application_name": APPLICATION_NAME,
            # As the engines' sessions; in UTC: times come as text in UTC (_TIME_AS_TEXT);
            # each prepared statement planned once (GENERIC_PLANS).
            "options": f"{session_options(settings)} -c timezone=UTC {GENERIC_PLANS}",
            **LIVENESS_OPTIONS,
        }
        self._pool_timeout = settings.db_pool_timeout
        self._idle: list[Pooled] = []
        self._free = asyncio.Semaphore(settings.loop_connections)
        self._closed = False

    async def read(self, read: Read[Result]) -> Result:
        """The `read`'s result, its statement run on one of the loop's connections."""
        return read.result(await self._execute(read.statement, read.params))

    async def write(self, write: Write[Result], deadline: float) -> Result:
        """The `write`'s result, its statement (its projection folded in) committed on one
        of the loop's connections, unless done after `deadline` (the loop's time) by the
        server's clock (IN_TIME); its chat hinted once committed. Run again when PostgreSQL
        rolled it back over a conflict, as a thread's command is (Retrying); once on a new
        session when it found its session read-only (a failover since); and once with the
        server's clock read again when the guard refused it while the loop's clock says it
        was in time (the server's clock stepped since it was read)."""
        loop = asyncio.get_running_loop()
        read_only_seen = clock_doubted = False
        attempt = 1
        while True:
            try:
                return await self._write(write, deadline, read_clock=clock_doubted)
            except DBAPIError as exc:
                code = sqlstate(exc)
                if code == READ_ONLY_SQL_TRANSACTION and not read_only_seen:
                    read_only_seen = True  # nothing was written: try a new session
                    self._close_idle()
                    continue
                if code == QUERY_CANCELED and not clock_doubted and loop.time() < deadline - MARGIN:
                    clock_doubted = True  # nothing was written: read the clock again
                    continue
                collided = conflict(exc)
                if collided is None or attempt == ATTEMPTS:
                    raise
                log.info("%s ran into %s, running it again", write.name, collided)
            await asyncio.sleep(pause_before(attempt))
            attempt += 1

    async def _write(self, write: Write[Result], deadline: float, read_clock: bool) -> Result:
        sql, values = bound(write.statement, self._dialect, write.params)
        statement = prepared(sql)
        assert DEADLINE in statement.names, f"{write.name} has no IN_TIME guard"
        loop = asyncio.get_running_loop()

        async def in_time(pooled: Pooled) -> tuple[DomainEvent, Result]:
            if read_clock or pooled.clock is None or pooled.clock.is_old(loop.time()):
                pooled.clock = await _read_clock(pooled)
            guarded = {**values, DEADLINE: pooled.clock.deadline(deadline)}
            # In autocommit: the statement is a transaction of its own, its COMMIT with it.
            rows = await _run(pooled, statement, guarded)
            return write.outcome(rows[0] if rows else None)

        event, result = await self._on_connection(in_time)
        publish_committed(self._publisher, [event])
        return result

    async def close(self) -> None:
        """Close the idle connections; one in use is closed when its work ends."""
        self._closed = True
        self._close_idle()

    async def _execute(self, statement: Executable, params: Mapping[str, Any]) -> list[Row]:
        """The rows of `statement`, bound with `params`, on one of the loop's connections."""
        sql, values = bound(statement, self._dialect, params)
        return await self._on_connection(lambda pooled: _run(pooled, prepared(sql), values))

    async def _on_connection(self, work: Callable[[Pooled], Awaitable[Done]]) -> Done:
        """`work` on one of the loop's connections, which goes back to the pool after, or
        after an error of `work`'s that left it idle (a 404); else it is closed (its
        statement first cancelled, if it may still run)."""
        if self._free.locked():
            try:
                async with asyncio.timeout(self._pool_timeout):
                    await self._free.acquire()
            except TimeoutError:
                raise PoolTimeout(
                    f"no loop connection free within {self._pool_timeout:g} s"
                ) from None
        else:
            await self._free.acquire()  # at once
        pooled = None
        try:
            pooled = await self._checkout()
            done = await work(pooled)
        except BaseException as exc:
            lost = pooled is None or bool(pooled.connection.closed)
            driver_error = isinstance(exc, psycopg2.Error)
            if pooled is not None and (lost or driver_error or not _idle(pooled)):
                _discard(pooled, in_flight=not lost and pooled.connection.isexecuting())
                pooled = None
            if driver_error:
                raise DBAPIError.instance(
                    None, None, exc, psycopg2.Error, connection_invalidated=lost
                ) from exc
            raise
        finally:
            self._free.release()
            if pooled is not None:
                self._give_back(pooled)
        return done

    def _give_back(self, pooled: Pooled) -> None:
        if self._closed:
            pooled.connection.close()
        else:
            self._idle.append(pooled)

    def _close_idle(self) -> None:
        while self._idle:
            self._idle.pop().connection.close()

    async def _checkout(self) -> Pooled:
        """An idle connection that the server has not closed, or a new one."""
        while self._idle:
            pooled = self._idle.pop()
            # A server that ended the session (a restart, pg_terminate_backend) has sent a
            # FATAL message and closed the socket: input waiting on an idle connection.
            if not pooled.connection.closed and not has_input(pooled.connection.fileno()):
                return pooled
            pooled.connection.close()
        connection = psycopg2.connect(**self._params, async_=True)
        try:
            await _ready(connection)
        except BaseException:
            connection.close()
            raise
        psycopg2.extensions.register_type(_TIME_AS_TEXT, connection)
        return Pooled(connection, CancelKey(connection))


async def _run(pooled: Pooled, statement: Prepared, params: Mapping[str, Any]) -> list[Row]:
    """The statement's rows, PREPAREd on this connection first if it is not yet."""
    if statement.name not in pooled.prepared:
        await _fetch(pooled, f"PREPARE {statement.name} AS {statement.text}")
        pooled.prepared.add(statement.name)
    return await _fetch(pooled, statement.execute, [params[name] for name in statement.names])


async def _read_clock(pooled: Pooled) -> ServerClock:
    """The connection's server's clock (infrastructure/server_clock.py)."""
    loop = asyncio.get_running_loop()
    sent = loop.time()
    ((server_time,),) = await _fetch(pooled, SERVER_TIME)
    return ServerClock.read(sent, server_time, loop.time())


async def _fetch(pooled: Pooled, sql: str, args: list[Any] | None = None) -> list[Row]:
    """`sql`'s rows (none for a statement that returns none), in one round trip."""
    cursor = pooled.connection.cursor()
    cursor.execute(sql, args)
    await _ready(pooled.connection)
    rows = cursor.fetchall() if cursor.description is not None else []
    cursor.close()
    return rows


def _idle(pooled: Pooled) -> bool:
    """Nothing running on the connection, and no transaction open on it."""
    connection = pooled.connection
    return not connection.isexecuting() and (
        connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    )


async def _ready(connection: PgConnection) -> None:
    """Until `poll()` says the connection is done with what it was asked (raises its error)."""
    loop = asyncio.get_running_loop()
    while True:
        state = connection.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        done = loop.create_future()
        fd = connection.fileno()
        if state == psycopg2.extensions.POLL_READ:
            loop.add_reader(fd, _set_done, done)
            try:
                await done
            finally:
                loop.remove_reader(fd)
        else:  # POLL_WRITE: the statement, or the connection's start-up, is still going out
            loop.add_writer(fd, _set_done, done)
            try:
                await done
            finally:
                loop.remove_writer(fd)


def _set_done(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _discard(pooled: Pooled, in_flight: bool) -> None:
    """Close a connection whose read failed or was abandoned: if its statement may still be
    running, cancel it first, in a thread (a cancel waits for the server: never on the
    loop), so that the server stops working for a request that has gone."""
    if not in_flight:
        pooled.connection.close()
        return

    def cancel_then_close() -> None:
        pooled.cancel_key.send()
        pooled.connection.close()

    threading.Thread(target=cancel_then_close, name="chatapi-cancel", daemon=True).start()
