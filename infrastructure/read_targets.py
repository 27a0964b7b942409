"""Which server a query reads from: the read engine's (a replica, with READ_DATABASE_URL),
unless the query brings a consistency token that replica has not replayed; then, after
waiting up to REPLICA_WAIT for it, the primary."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from infrastructure.consistency import HAS_REPLAYED, checked

POLL_SECONDS = 0.01


class ReadTargets:
    def __init__(
        self, replica: Engine, primary: Engine, replica_wait: float, has_replica: bool
    ) -> None:
        self._replica = replica
        self._primary = primary
        self._wait = replica_wait
        self._has_replica = has_replica

    @contextmanager
    def connect(self, consistency_token: str | None = None) -> Iterator[Connection]:
        """A connection that shows every write up to `consistency_token` (when given).

        The replay position is checked on the very connection the query then runs on.
        Without a replica (or on SQLite) the token is checked for its form, then ignored.
        """
        token = checked(consistency_token)
        if token is None or not self._has_replica:
            with self._replica.connect() as connection:
                yield connection
            return
        with self._replica.connect() as connection:
            if self._replayed(connection, token):
                yield connection
                return
        with self._primary.connect() as connection:
            # Autocommit, as on the read engine: nothing to roll back afterwards.
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    def _replayed(self, connection: Connection, token: str) -> bool:
        deadline = time.monotonic() + self._wait
        while not connection.exec_driver_sql(HAS_REPLAYED, {"token": token}).scalar_one():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True
