"""Which server a query reads from: a replica of READ_DATABASE_URL, unless the query brings
a consistency token no replica has replayed within REPLICA_WAIT; then the primary. A replica
that is gone, or too far behind, is left aside for a while (infrastructure/replicas.py)."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row

from infrastructure.consistency import NOT_AHEAD, checked
from infrastructure.driver_reads import fetch_all
from infrastructure.plans import Read
from infrastructure.replicas import Replicas

T = TypeVar("T")
Query = TypeVar("Query", contravariant=True)


class ReadTargets:
    def __init__(
        self,
        replicas: Replicas,
        primary: Engine,
        replica_wait: float,
        primary_only: bool = False,
    ) -> None:
        """`primary`: the read engine on DATABASE_URL. `primary_only`: every read there, as
        event streams read (their hints come from the primary's commits, which a replica
        may not have replayed yet)."""
        self._replicas = replicas
        self._primary = primary
        self._wait = replica_wait
        self._primary_only = primary_only

    def read(self, consistency_token: str | None, query: Callable[[Connection], T]) -> T:
        """`query(connection)` on a connection that shows every write up to
        `consistency_token` (when given). Without replicas (or on SQLite) the token is
        checked for its form, then ignored.

        A replica lost while the query runs is set aside, and the query runs again on the
        primary: a read changes nothing, so running it twice is safe.
        """
        token = checked(consistency_token)
        if self._replicas and not self._primary_only:
            found = self._replicas.connection(token, self._wait, self._issued)
            if found is not None:
                replica, connection = found
                with connection:
                    # In a list: a query's own None is an answer, ask's None a lost replica.
                    answer = replica.ask(connection, lambda c: [query(c)])
                if answer is not None:
                    return answer[0]
        with self._primary.connect() as connection:
            return query(connection)

    def run(self, read: Read[T]) -> T:
        """A `Read`'s result, its statement run as `read` runs a query."""
        rows = self.read(
            read.consistency_token, lambda c: fetch_all(c, read.statement, read.params)
        )
        return read.result(rows)

    def _issued(self, token: str) -> bool:
        """Whether the primary has written `token`'s position (one round trip): a made-up
        token ahead of it is read from the primary at once, rather than waited for."""
        with self._primary.connect() as connection:
            return bool(connection.exec_driver_sql(NOT_AHEAD, {"token": token}).scalar_one())

    def rows(
        self, consistency_token: str | None, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Row[*tuple[Any, ...]]]:
        """The rows of one statement, read as `read` reads."""
        return self.read(consistency_token, lambda c: c.execute(statement, params).all())


class PlannedQuery(Generic[Query, T]):
    """A query handler whose one statement is planned as a `Read`: called, it runs it here
    (in the caller's thread, through ReadTargets); the HTTP path may run `plan(query)` on
    the event loop instead (infrastructure/loop_database.py)."""

    def __init__(self, reads: ReadTargets) -> None:
        self._reads = reads

    def __call__(self, query: Query) -> T:
        return self._reads.run(self.plan(query))

    def plan(self, query: Query) -> Read[T]:
        raise NotImplementedError
