"""One statement through the DBAPI cursor of a pooled connection, for the hottest reads.

SQLAlchemy's execution (context, result metadata, row processing) costs about 100 µs of CPU
per statement on a GET that costs ~60 µs without it (docs/performance.md). The statement is
compiled once per dialect by SQLAlchemy, so it is the same SQL; what is kept from SQLAlchemy's
own execution: a driver error becomes a DBAPIError, and a lost connection is invalidated, so
that failures map to 503 as everywhere else (infrastructure/failures.py).
"""

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler


@cache
def _compiled(statement: Executable, dialect: Dialect) -> SQLCompiler:
    """Once per statement and engine (each engine has a dialect of its own)."""
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not an SQL statement: {statement!r}")
    return compiled


def fetch_one(
    connection: Connection, statement: Executable, params: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of `statement` (bound with `params`), as the driver returns it."""
    rows = _fetch(connection, statement, params, one=True)
    return rows[0] if rows else None


def fetch_all(
    connection: Connection, statement: Executable, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Every row of `statement` (bound with `params`), as the driver returns them: no
    type processing (an SQLite time is the text stored)."""
    return _fetch(connection, statement, params, one=False)


def bound(statement: Executable, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
    """The SQL text of `statement` for `dialect`, and its parameters as the driver takes
    them."""
    compiled = _compiled(statement, dialect)
    # With the values SQLAlchemy bound itself (SQLite's OFFSET 0, for one), each through its
    # type's bind processing as SQLAlchemy's execution does (a UTCDateTime as SQLite stores
    # it, for one).
    values = compiled.construct_params(params)
    processors: Mapping[str, Any] = compiled._bind_processors  # none of tuples here
    for name, process in processors.items():
        if name in values:
            values[name] = process(values[name])
    if compiled.positiontup is not None:  # SQLite's qmark style: ? in order
        return compiled.string, tuple(values[name] for name in compiled.positiontup)
    return compiled.string, values


def _fetch(
    connection: Connection, statement: Executable, params: Mapping[str, Any], one: bool
) -> list[tuple[Any, ...]]:
    dialect = connection.dialect
    sql, bound_params = bound(statement, dialect, params)
    dbapi_connection = connection.connection
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql, bound_params)
        rows = cursor.fetchmany(1) if one else cursor.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_connection.dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, bound_params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost
        ) from exc
    finally:
        cursor.close()
    return [tuple(row) for row in rows]
