"""A handler's work as data: its statement, its parameters and what its rows make, so that
one handler runs two ways: in the calling thread (scripts, the CLI, workers, SQLite,
replicas) or on the event loop (infrastructure/loop_database.py, the HTTP path on
PostgreSQL). The same statement, parameters and result either way."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Executable, Float, bindparam, func

from domain.events import DomainEvent

Result = TypeVar("Result")
Row = tuple[Any, ...]

# A Write's guard, in its statement once its rows are locked and written: true before the
# `deadline` parameter (the server's clock, epoch seconds), else query_canceled and its
# transaction rolls back (alembic 0009). The loop sets it (its COMMIT is in the statement);
# a thread's unit of work sets None, for it sends COMMIT itself, only while it is waited for.
DEADLINE = "deadline"
IN_TIME: ColumnElement[bool] = func.write_in_time(bindparam(DEADLINE, type_=Float()))


@dataclass(frozen=True, slots=True)
class Read(Generic[Result]):
    """A query's one statement and what its rows make: run through ReadTargets in a thread,
    or on the loop."""

    statement: Executable
    params: Mapping[str, Any]
    result: Callable[[list[Row]], Result]
    consistency_token: str | None = None


@dataclass(frozen=True, slots=True)
class Write(Generic[Result]):
    """A command that is one statement, its event's projection folded in (as its WITH on
    PostgreSQL: infrastructure/projections.py gives the parts) and guarded by IN_TIME (its
    params give DEADLINE as None): on the loop, or as a statement of a unit of work
    (UnitOfWork.run). Its first row (None if it returned none) makes the event and the
    command's result, or raises, which it may only when the statement changed nothing.
    Once committed, the event is published (its chat hinted) as a unit of work's are."""

    statement: Executable
    params: Mapping[str, Any]
    outcome: Callable[[Row | None], tuple[DomainEvent, Result]]
    name: str = "a write"  # the command's, for the log (as Retrying names it)
