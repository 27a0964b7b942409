"""Looking at the database directly with SQL, beside the code under test."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

# PostgreSQL's sessions on the asker's database, but the asker's own.
OTHER_SESSIONS = (
    "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()"
)


def count_rows(engine: Engine, table: str, **equal: Any) -> int:
    """How many rows `table` (or a view) holds, or those whose columns equal `equal`."""
    where = " AND ".join(f"{column} = :{column}" for column in equal)
    sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    return _count(engine, sql, equal)


def open_sessions(admin: Engine) -> int:
    """How many sessions PostgreSQL holds open on the database, the admin's own aside."""
    return _count(admin, f"SELECT count(*) {OTHER_SESSIONS}")


def terminate_other_connections(admin: Engine) -> int:
    """Ends every session on the database but the admin's own (PostgreSQL); how many it ended."""
    return _count(admin, f"SELECT count(pg_terminate_backend(pid)) {OTHER_SESSIONS}")


def _count(engine: Engine, sql: str, params: Mapping[str, Any] | None = None) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


@contextmanager
def inspector(url: str) -> Iterator[Engine]:
    """An engine of the test's own, apart from the service's pools: no connection lingers."""
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def held(database_url: str, statement: str, **params: Any) -> Iterator[Connection]:
    """What `statement` locks, held by a transaction of another client until the block ends
    (or the transaction is rolled back within it)."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(statement), params)
            try:
                yield connection
            finally:
                connection.rollback()
    finally:
        engine.dispose()
