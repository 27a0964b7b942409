"""The servers' hint listeners as PostgreSQL sees them: one LISTEN connection per process.

Looked at from the server's maintenance database, which stays reachable while a test keeps
new connections away from the database under test.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from infrastructure.hints.channel import APPLICATION_NAME

POLL_SECONDS = 0.05


class HintListeners:
    def __init__(self, admin: Engine, database: str) -> None:
        self._admin = admin
        self._database = database

    def pids(self) -> set[int]:
        """The backends of the LISTEN connections open on the database."""
        with self._admin.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = :database AND application_name = :name"
                ),
                {"database": self._database, "name": APPLICATION_NAME},
            )
            return {int(pid) for pid in rows.scalars()}

    def wait_for(self, count: int, timeout: float, besides: set[int]) -> set[int]:
        """Wait until exactly `count` LISTEN connections are open, none of them in `besides`."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if len(pids) == count and not pids & besides:
                return pids
            assert time.monotonic() < deadline, (
                f"{count} new LISTEN connection(s) expected within {timeout} s; "
                f"open: {sorted(pids)}, terminated before: {sorted(besides)}"
            )
            time.sleep(POLL_SECONDS)

    def terminate(self, pids: set[int]) -> None:
        """End these backends, as a database administrator or a failover would."""
        with self._admin.connect() as connection:
            for pid in pids:
                ended = connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                assert ended.scalar_one() is True, f"backend {pid} was not there to terminate"

    @contextmanager
    def new_connections_refused(self) -> Iterator[None]:
        """Nobody can connect to the database meanwhile; open connections stay open."""
        self._allow_connections(False)
        try:
            yield
        finally:
            self._allow_connections(True)

    def _allow_connections(self, allowed: bool) -> None:
        with self._admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{self._database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            )
