"""The read replicas of READ_DATABASE_URL: which to ask next, and which to leave aside.

Reads spread over the replicas in turn. One that cannot be reached, or whose replay is more
than REPLICA_MAX_LAG behind, is set aside for a while (its reads go to the next one, or to
the primary); after that it is tried again. One `Replicas` per process.
"""

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from infrastructure.consistency import HAS_REPLAYED

log = logging.getLogger("chatapi")

T = TypeVar("T")

# How long a replica found down or too far behind is left aside.
SET_ASIDE_SECONDS = 5.0
# How often each replica's replay lag is looked at, on a connection about to be used anyway.
LAG_CHECK_SECONDS = 1.0
# A replica usually replays a commit within a millisecond or two of the primary: the first
# polls for a token come soon, then every 10 ms.
FIRST_POLL_SECONDS = 0.001
POLL_SECONDS = 0.01

# Seconds the replica's replay is behind: 0 when it has replayed all it received, else the
# age of the last transaction it replayed (an idle primary sends nothing to replay).
# A server that is no standby (or has replayed nothing yet) has no lag to tell: 0.
REPLAY_LAG = text(
    "SELECT coalesce(CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END, 0)"
)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    name: str  # host:port/database, without credentials
    up: bool
    replay_lag_seconds: float | None  # None when down or set aside


class Replica:
    def __init__(self, engine: Engine, max_lag: float, set_aside_seconds: float) -> None:
        self.engine = engine
        url = engine.url
        self.name = f"{url.host}:{url.port or 5432}/{url.database}"
        self._max_lag = max_lag
        self._set_aside_seconds = set_aside_seconds
        self._aside_until = 0.0
        self._next_lag_check = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self._aside_until

    def set_aside(self, reason: object) -> None:
        if self.available():
            log.warning("replica %s set aside, reads go elsewhere: %s", self.name, reason)
        self._aside_until = time.monotonic() + self._set_aside_seconds

    def ask(self, connection: Connection, question: Callable[[Connection], T]) -> T | None:
        """`question(connection)`, or None (and the replica set aside) if it is gone."""
        try:
            return question(connection)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            self.set_aside(exc.orig)
            return None

    def usable_connection(self) -> Connection | None:
        """A connection to this replica if it answers and is not too far behind, else None."""
        try:
            connection = self.engine.connect()
        except DBAPIError as exc:
            self.set_aside(exc.orig)
            return None
        now = time.monotonic()
        if now < self._next_lag_check:
            return connection
        self._next_lag_check = now + LAG_CHECK_SECONDS
        lag = self.ask(connection, lambda c: float(c.execute(REPLAY_LAG).scalar_one()))
        if lag is not None and lag > self._max_lag:
            self.set_aside(f"its replay is {lag:.1f} s behind")
        if lag is None or lag > self._max_lag:
            connection.close()
            return None
        return connection

    def status(self) -> ReplicaStatus:
        if not self.available():
            return ReplicaStatus(self.name, up=False, replay_lag_seconds=None)
        try:
            with self.engine.connect() as connection:
                lag = connection.execute(REPLAY_LAG).scalar()
        except DBAPIError:
            return ReplicaStatus(self.name, up=False, replay_lag_seconds=None)
        return ReplicaStatus(self.name, up=True, replay_lag_seconds=float(lag or 0))


def replayed(token: str) -> Callable[[Connection], bool]:
    return lambda connection: bool(
        connection.exec_driver_sql(HAS_REPLAYED, {"token": token}).scalar_one()
    )


class Replicas:
    def __init__(
        self,
        engines: list[Engine],
        max_lag: float,
        set_aside_seconds: float = SET_ASIDE_SECONDS,
        max_waiting: int = 2,
    ) -> None:
        self.members = [Replica(engine, max_lag, set_aside_seconds) for engine in engines]
        self._turn = itertools.count()
        # A wait for a replica holds its handler thread: at most this many at once, so that
        # tokens no replica has replayed yet cannot tie up every thread; beyond, the read
        # goes to the primary at once.
        self._waits = threading.BoundedSemaphore(max_waiting)

    def __bool__(self) -> bool:
        return bool(self.members)

    def in_turn(self) -> Iterator[Replica]:
        """The replicas not set aside, each read starting at the next one (round robin)."""
        start = next(self._turn) % len(self.members)
        for replica in self.members[start:] + self.members[:start]:
            if replica.available():
                yield replica

    def connection(
        self,
        token: str | None,
        wait: float,
        issued: Callable[[str], bool] = lambda token: True,
    ) -> tuple[Replica, Connection] | None:
        """A connection to a replica that shows every write up to `token` (any usable one
        without a token), or None: none is usable, or none replayed it within `wait` s, or
        the token is not one the primary has `issued`, or too many reads wait already.

        The replay position is checked on the connection returned, which the query then
        runs on. While waiting, each replica asked is polled: the first to replay wins.
        `issued` is asked only for a token no replica has replayed at once, before waiting.
        """
        behind: list[tuple[Replica, Connection]] = []
        try:
            for replica in self.in_turn():
                connection = replica.usable_connection()
                if connection is None:
                    continue
                answer = True if token is None else replica.ask(connection, replayed(token))
                if answer:
                    return replica, connection
                if answer is None:
                    connection.close()
                    continue
                behind.append((replica, connection))
            if not token or not behind or not issued(token):
                return None
            if not self._waits.acquire(blocking=False):
                return None
            try:
                return self._first_to_replay(behind, token, wait)
            finally:
                self._waits.release()
        finally:
            for _, connection in behind:
                connection.close()

    @staticmethod
    def _first_to_replay(
        behind: list[tuple[Replica, Connection]], token: str, wait: float
    ) -> tuple[Replica, Connection] | None:
        """Polls each of `behind` until one has replayed `token`, which leaves the list."""
        deadline = time.monotonic() + wait
        pause = FIRST_POLL_SECONDS
        while behind and time.monotonic() < deadline:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, POLL_SECONDS)
            for replica, connection in list(behind):
                answer = replica.ask(connection, replayed(token))
                if answer is not False:  # replayed, or gone: either way it leaves the list
                    behind.remove((replica, connection))
                if answer:
                    return replica, connection
                if answer is None:
                    connection.close()
        return None

    def dispose(self) -> None:
        for replica in self.members:
            replica.engine.dispose()
