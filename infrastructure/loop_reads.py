"""The hot reads' statement on the event loop: psycopg2's asynchronous connections, no thread.

A read that runs in a handler thread pays for the hop there and back (the thread limiter,
the worker queue, GIL hand-offs while the query is in flight): more than the query itself
costs the process (docs/performance.md, issue 25). Here the statement of a `Read` is sent on
one of a few connections in psycopg2's asynchronous mode, owned by the loop: the loop
watches the socket (`add_reader`/`add_writer` as `poll()` asks) and builds the response
from the rows when they arrive. The statement text, its parameters and the row-to-result
code are the `Read`'s, the same as the thread's path (ReadTargets.run), which scripts, the
CLI, SQLite and replicas keep.

What the synchronous path does, this does too: a connection found closed by the server
while idle is replaced before use; a lost one is dropped; a driver error is a DBAPIError
(so that a lost connection or a stopping server is a 503); the wait for a connection ends
after DB_POOL_TIMEOUT (a 503); and a read whose request stops waiting (its deadline, or
the client gone at shutdown) has its statement cancelled (infrastructure/cancellation.py)
and its connection closed, never reused while the cancel may still land.
"""

import asyncio
import hashlib
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from infrastructure.cancellation import CancelKey
from infrastructure.database import (
    LIVENESS_OPTIONS,
    PgConnection,
    connect_params,
    has_input,
    is_sqlite,
)
from infrastructure.driver_reads import Read, Result, bound
from infrastructure.settings import Settings

APPLICATION_NAME = "chatapi loop reads"


# timestamptz as PostgreSQL's text, 'YYYY-MM-DD HH:MM:SS[.ffffff]+00' (the session is in
# UTC): written into JSON as it is (get_chat_document.json_time), or parsed by fromisoformat
# (types.utc), cheaper than psycopg2's datetime with its tzinfo, then moved to UTC.
TIMESTAMPTZ_OID = 1184
_TIME_AS_TEXT = psycopg2.extensions.new_type(
    (TIMESTAMPTZ_OID,), "TIMESTAMPTZ_AS_TEXT", lambda value, cursor: value
)


def uses_loop_reads(settings: Settings) -> bool:
    """On PostgreSQL, unless turned off or reads go to replicas (ReadTargets chooses then)."""
    return (
        settings.loop_read_connections > 0
        and not settings.read_database_url
        and not is_sqlite(settings.database_url)
    )


@dataclass(slots=True)
class Pooled:
    connection: PgConnection
    cancel_key: CancelKey  # taken as it is made: what cancels its statement from a thread
    prepared: set[str] = field(default_factory=set)  # the statements PREPAREd on it


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


class LoopReads:
    """Up to `size` connections of one event loop; `run` from that loop only."""

    def __init__(self, settings: Settings, dialect: Dialect) -> None:
        self._dialect = dialect
        self._params = connect_params(settings.database_url) | {
            "connect_timeout": settings.db_connect_timeout,
            "application_name": APPLICATION_NAME,
            # As the engines' connections: a statement never outlives its request by much.
            # UTC: times come as text in UTC (see _TIME_AS_TEXT).
            "options": (
                f"-c statement_timeout={int(settings.db_statement_timeout * 1000)} -c timezone=UTC"
            ),
            **LIVENESS_OPTIONS,
        }
        self._pool_timeout = settings.db_pool_timeout
        self._idle: list[Pooled] = []
        self._free = asyncio.Semaphore(settings.loop_read_connections)
        self._closed = False

    async def run(self, read: Read[Result]) -> Result:
        """The `read`'s result, its statement run on one of the loop's connections."""
        sql, params = bound(read.statement, self._dialect, read.params)
        return read.result(await self._fetch_all(prepared(sql), params))

    async def close(self) -> None:
        """Close the idle connections; one in use is closed when its read ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().connection.close()

    async def _fetch_all(self, statement: Prepared, params: Any) -> list[tuple[Any, ...]]:
        try:
            async with asyncio.timeout(self._pool_timeout):
                await self._free.acquire()
        except TimeoutError:
            raise PoolTimeout(
                f"no loop read connection free within {self._pool_timeout:g} s"
            ) from None
        pooled = None
        try:
            pooled = await self._checkout()
            cursor = pooled.connection.cursor()
            if statement.name not in pooled.prepared:
                cursor.execute(f"PREPARE {statement.name} AS {statement.text}")
                await _ready(pooled.connection)
                pooled.prepared.add(statement.name)
            cursor.execute(statement.execute, [params[name] for name in statement.names])
            await _ready(pooled.connection)
            rows = cursor.fetchall()
            cursor.close()
        except BaseException as exc:
            lost = pooled is None or bool(pooled.connection.closed)
            if pooled is not None:
                _discard(pooled, in_flight=not lost and not isinstance(exc, psycopg2.Error))
            if isinstance(exc, psycopg2.Error):
                raise DBAPIError.instance(
                    statement.text, params, exc, psycopg2.Error, connection_invalidated=lost
                ) from exc
            raise
        finally:
            self._free.release()
        if self._closed:
            pooled.connection.close()
        else:
            self._idle.append(pooled)
        return rows  # type: ignore[no-any-return]

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
