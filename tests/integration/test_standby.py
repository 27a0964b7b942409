"""The suite's hot standbys replicate the suite's cluster: what the replica tests stand on."""

import time
import uuid

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from devtools.postgres_cluster import PostgresCluster
from tests.conftest import EmptyDatabases
from tests.support.database import inspector
from tests.support.replicas import on

REPLICATION_BOUND_SECONDS = 10.0


def wait_for_row(url: str, table: str, value: str, timeout: float) -> float:
    """Seconds until `table` on `url` holds `value`; fails after `timeout`.

    The database and the table may not have reached the standby yet either.
    """
    start = time.monotonic()
    with inspector(url) as engine:
        while time.monotonic() - start < timeout:
            try:
                with engine.connect() as connection:
                    found = connection.execute(
                        text(f"SELECT count(*) FROM {table} WHERE value = :value"),
                        {"value": value},
                    ).scalar_one()
            except DBAPIError:
                found = 0
            if found:
                return time.monotonic() - start
            time.sleep(0.02)
    raise AssertionError(f"{value!r} did not reach the standby within {timeout} s")


def write_row(url: str, table: str) -> str:
    value = uuid.uuid4().hex
    with inspector(url) as engine, engine.connect() as connection:
        connection.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (value text)"))
        connection.execute(text(f"INSERT INTO {table} VALUES (:value)"), {"value": value})
    return value


def test_a_row_written_on_the_primary_appears_on_the_standby(
    databases: EmptyDatabases, standby: PostgresCluster
) -> None:
    url = databases.new("postgresql")
    value = write_row(url, "replicated")
    wait_for_row(on(standby, url), "replicated", value, REPLICATION_BOUND_SECONDS)
    with inspector(on(standby, url)) as engine, engine.connect() as connection:
        assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True


def test_a_delayed_standby_shows_a_row_only_after_its_delay(
    databases: EmptyDatabases, delayed_standby: PostgresCluster
) -> None:
    url = databases.new("postgresql")
    first = write_row(url, "delayed")
    wait_for_row(on(delayed_standby, url), "delayed", first, REPLICATION_BOUND_SECONDS)
    delayed_standby.set_apply_delay(1500)
    try:
        value = write_row(url, "delayed")
        took = wait_for_row(on(delayed_standby, url), "delayed", value, REPLICATION_BOUND_SECONDS)
    finally:
        delayed_standby.set_apply_delay(0)
    assert took >= 1.0
