"""SQL expressions that write JSON text, byte for byte as the API's pydantic models write it,
on PostgreSQL and SQLite: so that a read model can be read as the response document itself
(queries/get_chat_document.py), with no rows to parse and nothing to serialise in Python.

tests/integration/test_chat_document.py proves the documents identical to the models' JSON.
"""

from typing import Any

from sqlalchemy import Text, cast, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class json_string(FunctionElement[str]):  # noqa: N801 (SQL functions are lower case)
    """A text column as a JSON string: quoted, with pydantic's escapes (\\n, \\u0001, ...)."""

    type = Text()
    inherit_cache = True


class json_time(FunctionElement[str]):  # noqa: N801
    """A UTC timestamp as pydantic writes an aware datetime: `"2026-11-22T14:10:49.829140Z"`,
    without the fraction when it is zero. NULL stays NULL."""

    type = Text()
    inherit_cache = True


class comma_joined(FunctionElement[str]):  # noqa: N801
    """JSON texts joined by commas in the order of the second argument; NULL for none.

    SQLite before 3.44 takes no ORDER BY in an aggregate: there the rows must come from a
    subquery already in that order, which SQLite's aggregate keeps.
    """

    type = Text()
    inherit_cache = True


def json_int(column: ColumnElement[Any]) -> ColumnElement[str]:
    return cast(column, Text)


def text_of(*parts: ColumnElement[Any] | str) -> ColumnElement[str]:
    """The parts concatenated (`||`). Strings are JSON punctuation and keys: SQL literals in
    the statement, not parameters sent with every execution."""
    first, *rest = (sql_literal(part) if isinstance(part, str) else part for part in parts)
    expression: ColumnElement[str] = first
    for part in rest:
        expression = expression.concat(part)
    return expression


def sql_literal(text: str) -> ColumnElement[str]:
    if "%" in text or "'" in text:  # psycopg2's parameter marker; SQL's quote
        raise ValueError(f"not a plain JSON key or punctuation: {text!r}")
    return literal_column(f"'{text}'", Text)


@compiles(json_string, "postgresql")
def _pg_json_string(element: json_string, compiler: Any, **kw: Any) -> str:
    return f"to_json({compiler.process(element.clauses, **kw)})::text"


@compiles(json_string, "sqlite")
def _sqlite_json_string(element: json_string, compiler: Any, **kw: Any) -> str:
    return f"json_quote({compiler.process(element.clauses, **kw)})"


@compiles(json_time, "postgresql")
def _pg_json_time(element: json_time, compiler: Any, **kw: Any) -> str:
    at = compiler.process(element.clauses, **kw)
    utc = f"({at} AT TIME ZONE 'UTC')"
    return (
        f"""('"' || to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') || """
        f"""CASE WHEN date_part('microseconds', {utc})::bigint %% 1000000 = 0 THEN '' """
        f"""ELSE to_char({utc}, '.US') END || 'Z"')"""
    )


@compiles(json_time, "sqlite")
def _sqlite_json_time(element: json_time, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores an SQLite datetime as 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC here
    # (infrastructure/types.py).
    at = compiler.process(element.clauses, **kw)
    return (
        f"""('"' || substr({at}, 1, 10) || 'T' || substr({at}, 12, 8) || """
        f"""CASE WHEN substr({at}, 21, 6) = '000000' THEN '' """
        f"""ELSE '.' || substr({at}, 21, 6) END || 'Z"')"""
    )


@compiles(comma_joined, "postgresql")
def _pg_comma_joined(element: comma_joined, compiler: Any, **kw: Any) -> str:
    text, order = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"string_agg({text}, ',' ORDER BY {order})"


@compiles(comma_joined, "sqlite")
def _sqlite_comma_joined(element: comma_joined, compiler: Any, **kw: Any) -> str:
    text, _ = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"group_concat({text}, ',')"
