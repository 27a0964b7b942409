"""The hint channel's own PostgreSQL connections, opened with psycopg2 outside any pool.

Hints need session state (LISTEN) and autocommit, and must not take a connection that a
handler is waiting for, so they do not come from the engines' pools. This is the only module
of the channel that talks to psycopg2 directly.
"""

import select
from typing import Any

import psycopg2  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

# Any failure of the driver or the server: the channel drops the connection and opens another.
DatabaseError: type[Exception] = psycopg2.Error

# What a psycopg2 connection is to this package; psycopg2 ships no type information.
PgConnection = Any

# As the engines' connections (infrastructure/database.py): a server that vanished without
# closing the connection is noticed within about 20 s rather than hours. tcp_user_timeout does
# the same for a connection with unacknowledged writes, which keepalives do not watch.
LIVENESS_OPTIONS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 2,
    "tcp_user_timeout": 20_000,
}


def connect_params(database_url: str) -> dict[str, Any]:
    """psycopg2.connect() keywords for a SQLAlchemy URL (postgresql+psycopg2://user:pw@host/db).

    Query parameters (sslmode, a socket directory in `host`, ...) are passed on as they are.
    """
    url = make_url(database_url)
    params: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    params.update(url.query)
    return params


def connect_autocommit(
    database_url: str, connect_timeout: float, application_name: str
) -> PgConnection:
    """A blocking connection in autocommit: each statement is its own transaction."""
    connection = psycopg2.connect(
        **connect_params(database_url),
        connect_timeout=_timeout_seconds(connect_timeout),
        application_name=application_name,
        **LIVENESS_OPTIONS,
    )
    connection.autocommit = True
    return connection


def connect_nonblocking(
    database_url: str, connect_timeout: float, application_name: str, statement: str
) -> PgConnection:
    """An asynchronous connection (always autocommit) that has run `statement`.

    Blocks until then, so call it from a worker thread. Afterwards the connection never blocks
    its caller: an event loop drives it with poll() whenever its socket is readable.
    """
    connection = psycopg2.connect(
        **connect_params(database_url),
        async_=True,
        connect_timeout=_timeout_seconds(connect_timeout),
        application_name=application_name,
        **LIVENESS_OPTIONS,
    )
    try:
        _wait(connection, connect_timeout)
        # poll() reads the answer into this cursor, which must outlive the wait.
        cursor = connection.cursor()
        cursor.execute(statement)
        _wait(connection, connect_timeout)
        cursor.close()
    except BaseException:
        connection.close()
        raise
    return connection


def _wait(connection: PgConnection, timeout: float) -> None:
    """Drive an asynchronous connection until its pending operation is done."""
    while True:
        state = connection.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        if state == psycopg2.extensions.POLL_READ:
            ready = select.select([connection], [], [], timeout)[0]
        else:
            ready = select.select([], [connection], [], timeout)[1]
        if not ready:
            connection.close()
            raise psycopg2.OperationalError(f"no answer from the server within {timeout} s")


def _timeout_seconds(timeout: float) -> int:
    # libpq takes whole seconds, and reads 0 as "wait forever".
    return max(1, round(timeout))
