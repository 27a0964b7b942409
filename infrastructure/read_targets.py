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
        self,
        replica: Engine,
        primary: Engine,
        replica_wait: float,
        has_replica: bool,
        primary_only: bool = False,
    ) -> None:
        """`primary_only`: every read on the primary, as event streams read (their hints
        come from the primary's commits, which a replica may not have replayed yet)."""
        self._replica = replica
        self._primary = primary
        self._wait = replica_wait
        self._has_replica = has_replica
        self._primary_only = primary_only

    @contextmanager
    def connect(self, consistency_token: str | None = None) -> Iterator[Connection]:
        """A connection that shows every write up to `consistency_token` (when given).

        The replay position is checked on the very connection the query then runs on.
        Without a replica (or on SQLite) the token is checked for its form, then ignored.
        """
        token = checked(consistency_token)
        if not self._has_replica or (token is None and not self._primary_only):
            with self._replica.connect() as connection:
                yield connection
            return
        if not self._primary_only:
            with self._replica.connect() as connection:
                if token is not None and self._replayed(connection, token):
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
