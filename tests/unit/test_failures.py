"""Which database errors are the database's state (a 503), and the retry of a command that
PostgreSQL rolled back over a conflict: on errors made here, no database."""

import sqlite3

import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InternalError, OperationalError

from infrastructure.failures import ATTEMPTS, Retrying, is_unavailable


class DriverError(Exception):
    """What psycopg2 raises, as far as the code reads it: the SQLSTATE."""

    def __init__(self, pgcode: str) -> None:
        super().__init__(f"SQLSTATE {pgcode}")
        self.pgcode = pgcode


def error(kind: type[DBAPIError], pgcode: str) -> DBAPIError:
    return kind("INSERT ...", {}, DriverError(pgcode))


@pytest.mark.parametrize(
    ("kind", "pgcode"),
    [
        (InternalError, "25006"),  # read_only_sql_transaction: psycopg2's InternalError
        (OperationalError, "57P01"),  # admin_shutdown
        (OperationalError, "57P03"),  # cannot_connect_now
        (OperationalError, "53300"),  # too_many_connections
        (OperationalError, "08006"),  # connection_failure
        (OperationalError, "40P01"),  # deadlock_detected, once the retries are used up
        (OperationalError, "40001"),  # serialization_failure, likewise
        (OperationalError, "57014"),  # query_canceled: the statement timeout
        (OperationalError, "55P03"),  # lock_not_available: the lock timeout
    ],
)
def test_the_databases_state_is_unavailable(kind: type[DBAPIError], pgcode: str) -> None:
    assert is_unavailable(error(kind, pgcode))


@pytest.mark.parametrize(
    ("kind", "pgcode"),
    [
        (IntegrityError, "23505"),  # unique_violation
        (DataError, "22P02"),  # invalid_text_representation
        (InternalError, "XX000"),  # internal_error: PostgreSQL's own bug
        (InternalError, "25P02"),  # in_failed_sql_transaction: ours
    ],
)
def test_anything_else_is_a_bug(kind: type[DBAPIError], pgcode: str) -> None:
    assert not is_unavailable(error(kind, pgcode))


def test_sqlite_locked_and_a_refused_connection_are_unavailable() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert is_unavailable(OperationalError("INSERT ...", {}, locked))
    refused = Exception("connection refused")  # no SQLSTATE: the connection was never made
    assert is_unavailable(OperationalError(None, None, refused))


class Handler:
    """Fails with each of `failures` (SQLSTATEs) in turn, then answers."""

    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, command: str) -> str:
        self.calls += 1
        if self.failures:
            raise error(OperationalError, self.failures.pop(0))
        return f"done: {command}"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("infrastructure.failures.sleep", slept.append)
    return slept


def test_conflicts_run_the_command_again(pauses: list[float]) -> None:
    handler = Handler("40P01", "40001")
    assert Retrying(handler)("post") == "done: post"
    assert handler.calls == ATTEMPTS == 3
    assert len(pauses) == 2
    assert 0 <= pauses[0] <= 0.01
    assert 0 <= pauses[1] <= 0.02


def test_the_last_conflict_is_raised(pauses: list[float]) -> None:
    handler = Handler(*["40P01"] * ATTEMPTS)
    with pytest.raises(OperationalError) as raised:
        Retrying(handler)("post")
    assert getattr(raised.value.orig, "pgcode", None) == "40P01"
    assert handler.calls == ATTEMPTS


def test_other_failures_are_raised_at_once(pauses: list[float]) -> None:
    handler = Handler("57P01")
    with pytest.raises(OperationalError):
        Retrying(handler)("post")
    assert handler.calls == 1
    assert pauses == []
