"""Which server a query reads from: the read engine's (a replica, with READ_DATABASE_URL),
unless the query brings a consistency token that replica has not replayed; then, after
waiting up to REPLICA_WAIT for it, the primary. A replica that cannot be reached is skipped
for a while: its reads go to the primary meanwhile."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from infrastructure.consistency import HAS_REPLAYED, checked

log = logging.getLogger("chatapi")

# A replica usually replays a commit within a millisecond or two of the primary: the first
# polls come soon, then every 10 ms.
FIRST_POLL_SECONDS = 0.001
POLL_SECONDS = 0.01
SKIP_SECONDS = 5.0


class ReplicaSkip:
    """Since when, and until when, the replica is not tried: one per process."""

    def __init__(self, seconds: float = SKIP_SECONDS) -> None:
        self._seconds = seconds
        self._until = 0.0

    def active(self) -> bool:
        return time.monotonic() < self._until

    def start(self, reason: Exception) -> None:
        if not self.active():
            log.warning("replica unreachable, reading from the primary: %s", reason)
        self._until = time.monotonic() + self._seconds


class ReadTargets:
    def __init__(
        self,
        replica: Engine,
        primary: Engine,
        replica_wait: float,
        has_replica: bool,
        skip: ReplicaSkip,
        primary_only: bool = False,
    ) -> None:
        """`primary_only`: every read on the primary, as event streams read (their hints
        come from the primary's commits, which a replica may not have replayed yet)."""
        self._replica = replica
        self._primary = primary
        self._wait = replica_wait
        self._has_replica = has_replica
        self._skip = skip
        self._primary_only = primary_only

    @contextmanager
    def connect(self, consistency_token: str | None = None) -> Iterator[Connection]:
        """A connection that shows every write up to `consistency_token` (when given).

        The replay position is checked on the very connection the query then runs on.
        Without a replica (or on SQLite) the token is checked for its form, then ignored.
        """
        token = checked(consistency_token)
        if not self._has_replica:
            with self._replica.connect() as connection:
                yield connection
            return
        replica = None if self._primary_only else self._replica_connection()
        if replica is not None:
            with replica:
                if token is None or self._replayed(replica, token):
                    yield replica
                    return
        with self._primary.connect() as connection:
            # Autocommit, as on the read engine: nothing to roll back afterwards.
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    def _replica_connection(self) -> Connection | None:
        if self._skip.active():
            return None
        try:
            return self._replica.connect()
        except DBAPIError as exc:
            self._skip.start(exc)
            return None

    def _replayed(self, connection: Connection, token: str) -> bool:
        deadline = time.monotonic() + self._wait
        pause = FIRST_POLL_SECONDS
        while not connection.exec_driver_sql(HAS_REPLAYED, {"token": token}).scalar_one():
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, POLL_SECONDS)
        return True
