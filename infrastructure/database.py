"""Engines for the write side and the read side, tuned per database."""

import select
from collections.abc import Iterator
from typing import Any

import psycopg2  # type: ignore[import-untyped]
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

from infrastructure.cancellation import watch
from infrastructure.failures import READ_ONLY_SQL_TRANSACTION
from infrastructure.replicas import SET_ASIDE_SECONDS, Replicas
from infrastructure.settings import Settings

SQLITE_BUSY_TIMEOUT_SECONDS = 30


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# libpq options for every PostgreSQL connection (the engines', the hint channel's).
LIVENESS_OPTIONS: dict[str, int] = {
    # Notice a server that vanished without closing the connection (host down, cable cut)
    # within about 20 s, instead of waiting on the socket for hours.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 2,
    # The same bound for a query sent into a dead network: keepalives only probe an idle
    # socket, and unacknowledged data would be retransmitted for 15 minutes. Neither notices
    # a server that is frozen (SIGSTOP) or hung: its kernel still acknowledges. Then a
    # request's deadline bounds the client's wait (api/admission.py), and the thread waits on
    # until the server runs again, which then acts on the cancel sent at the deadline.
    "tcp_user_timeout": 20_000,
}
PgConnection = Any  # a psycopg2 connection: psycopg2 ships no type information


def connect_params(database_url: str) -> dict[str, Any]:
    """psycopg2.connect() keywords for a SQLAlchemy URL; query parameters (sslmode, a socket
    directory in `host`, ...) pass on as they are."""
    url = make_url(database_url)
    params: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    return params | dict(url.query)


def connect(database_url: str, connect_timeout: float, application_name: str) -> PgConnection:
    """An autocommit psycopg2 connection outside the engines' pools, for what needs a session
    of its own: the hint channel's (LISTEN is session state, and hints must not take a
    connection that a handler is waiting for)."""
    connection = psycopg2.connect(
        **connect_params(database_url),
        connect_timeout=max(1, round(connect_timeout)),  # whole seconds; 0 would be forever
        application_name=application_name,
        **LIVENESS_OPTIONS,  # keepalives and tcp_user_timeout: a vanished server is noticed
    )
    connection.autocommit = True
    return connection


# Reads are single autocommit statements: nothing to roll back when a connection goes back.
READ_OPTIONS: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}


def write_engine(settings: Settings) -> Iterator[Engine]:
    """The engine command handlers write through, one transaction per unit of work."""
    engine = _create_engine(settings, settings.database_url)
    if engine.dialect.name == "sqlite":
        # Take the database write lock at BEGIN, so that a post takes the chat's next seq
        # and time and writes its message as one serialised step, and busy waits happen
        # up front.
        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    yield engine
    engine.dispose()


def read_engine(settings: Settings) -> Iterator[Engine]:
    """The engine queries read through on DATABASE_URL: each query is a single autocommit
    statement. With replicas, it serves the reads they cannot (infrastructure/read_targets)."""
    engine = _create_engine(settings, settings.database_url, **READ_OPTIONS)
    yield engine
    engine.dispose()


def replicas(
    settings: Settings, set_aside_seconds: float = SET_ASIDE_SECONDS
) -> Iterator[Replicas]:
    """An engine per replica of READ_DATABASE_URL, read through as the read engine is."""
    engines = [_create_engine(settings, url, **READ_OPTIONS) for url in settings.replica_urls]
    replicas = Replicas(
        engines, settings.replica_max_lag, set_aside_seconds, settings.replica_waits
    )
    yield replicas
    replicas.dispose()


def session_options(settings: Settings) -> str:
    """libpq's `options` of the service's PostgreSQL sessions (the engines', the event
    loop's).

    A statement may not run (or wait on a lock) longer than a request may take: a request
    cancels its own at its deadline (infrastructure/cancellation.py), and this bounds the
    rest, the worker's and the CLI's. A wait for a lock (a post behind a chat's row lock
    held by a stuck transaction) gives up sooner, rolled back, before the request's own
    deadline.
    """
    return (
        f"-c statement_timeout={int(settings.db_statement_timeout * 1000)} "
        f"-c lock_timeout={int(settings.lock_timeout * 1000)}"
    )


def _create_engine(settings: Settings, database_url: str, **options: Any) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            **options,
        )
        event.listen(engine, "connect", _configure_sqlite_connection)
        return engine
    engine = create_engine(
        url,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "options": session_options(settings),
            **LIVENESS_OPTIONS,
        },
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        **options,
    )
    event.listen(engine, "checkout", _replace_if_closed_by_server)
    event.listen(engine, "handle_error", _reconnect_if_read_only)
    watch(engine)  # after the check above: a connection replaced is never held by a request
    return engine


def _reconnect_if_read_only(context: ExceptionContext) -> None:
    """Take a read-only transaction for a lost connection: the server has become a standby
    (a failover), so every pooled connection to it is discarded, and the next ones reach
    whichever server DATABASE_URL leads to by then. The request itself gets 503."""
    if getattr(context.original_exception, "pgcode", None) == READ_ONLY_SQL_TRANSACTION:
        context.is_disconnect = True


def _replace_if_closed_by_server(dbapi_connection: Any, _: ConnectionPoolEntry, __: Any) -> None:
    """Swap a pooled connection the server has closed for a fresh one, before it is used.

    A server that restarts or ends a session (pg_terminate_backend) sends a FATAL message and
    closes the socket, so a dead idle connection has input waiting where a live one has
    none. Polling for it costs one system call, not pool_pre_ping's round trip; without it,
    the first request on each stale connection would fail although the database is back.
    DisconnectionError makes the pool reconnect this entry (and 503 if it cannot). Anything
    else found waiting (a NOTICE) costs a needless reconnect, never a wrong answer.
    """
    if dbapi_connection.closed or has_input(dbapi_connection.fileno()):
        raise DisconnectionError("the server closed this pooled connection")


def has_input(fd: int) -> bool:
    # poll, not select: select cannot watch a descriptor numbered 1024 or more.
    poller = select.poll()
    poller.register(fd, select.POLLIN)  # a hang-up or an error is reported regardless
    return bool(poller.poll(0))


def _configure_sqlite_connection(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
    # pysqlite would otherwise open transactions on its own; SQLAlchemy's begin event does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default: cascades would silently not run
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.close()
