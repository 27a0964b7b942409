"""Databases on the suite's hot standbys, and waiting for a standby to catch up."""

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from devtools.postgres_cluster import PostgresCluster
from infrastructure.consistency import HAS_REPLAYED, POSITION_AFTER_COMMIT
from infrastructure.read_targets import ReadTargets
from tests.support.database import inspector

CATCH_UP_SECONDS = 10.0
T = TypeVar("T")


def on(server: PostgresCluster, database_url: str) -> str:
    """`database_url`'s database, on `server` (a standby of the database's cluster)."""
    return make_url(database_url).set(port=server.port).render_as_string(hide_password=False)


def caught_up(primary_url: str, standby: PostgresCluster) -> None:
    """Waits until `standby` has replayed everything committed on the primary until now."""
    with inspector(primary_url) as primary, primary.connect() as connection:
        lsn = connection.exec_driver_sql(POSITION_AFTER_COMMIT).scalar_one()
    deadline = time.monotonic() + CATCH_UP_SECONDS
    replayed = HAS_REPLAYED.replace("%(token)s", f"'{lsn}'")
    while standby.sql(replayed) != "t":
        if time.monotonic() > deadline:
            where = standby.sql("SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()")
            raise AssertionError(
                f"the standby did not replay {lsn} in {CATCH_UP_SECONDS} s "
                f"(received, replayed: {where})"
            )
        time.sleep(0.02)


class CaughtUpReads(ReadTargets):
    """Reads that each bring the primary's WAL position as their consistency token, as a
    client that had just written would: with CHATAPI_TEST_READS_ON_STANDBY=1, the suite's
    reads run on a standby, waiting for it to replay whatever the test wrote before."""

    def read(self, consistency_token: str | None, query: Callable[[Connection], T]) -> T:
        if consistency_token is None:
            with self._primary.connect() as primary:
                consistency_token = primary.exec_driver_sql(POSITION_AFTER_COMMIT).scalar_one()
        return super().read(consistency_token, query)


def transactions_on(server: PostgresCluster, database_url: str) -> int:
    """How many transactions `database_url`'s database has committed on `server`."""
    name = make_url(database_url).database
    count = server.sql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'")
    return int(count or 0)


SERVER_PORT = text("SELECT inet_server_port()")


def port_serving(reads: ReadTargets, consistency_token: str | None = None) -> int:
    """The port of the server (primary or standby) a read with this token runs on."""
    return int(reads.read(consistency_token, lambda c: c.execute(SERVER_PORT).scalar_one()))
