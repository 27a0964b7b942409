"""Databases on the suite's hot standbys, and waiting for a standby to catch up."""

import time

from sqlalchemy import text
from sqlalchemy.engine import make_url

from devtools.postgres_cluster import PostgresCluster
from tests.support.database import inspector

CATCH_UP_SECONDS = 10.0


def on(server: PostgresCluster, database_url: str) -> str:
    """`database_url`'s database, on `server` (a standby of the database's cluster)."""
    return make_url(database_url).set(port=server.port).render_as_string(hide_password=False)


def caught_up(primary_url: str, standby: PostgresCluster) -> None:
    """Waits until `standby` has replayed everything committed on the primary until now."""
    with inspector(primary_url) as primary, primary.connect() as connection:
        lsn = connection.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
    deadline = time.monotonic() + CATCH_UP_SECONDS
    replayed = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
    while standby.sql(replayed) != "t":
        if time.monotonic() > deadline:
            raise AssertionError(f"the standby did not replay {lsn} in {CATCH_UP_SECONDS} s")
        time.sleep(0.02)
