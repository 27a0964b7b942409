"""One connection, one transaction: what a command handler changes, the events it records,
the idempotency key it runs under, and the hints it publishes once committed."""

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from domain.events import ChatCreated, DomainEvent, MessagePosted
from domain.principals import Principal
from infrastructure import idempotency
from infrastructure.caller import ensure_awaited
from infrastructure.clock import Clock
from infrastructure.consistency import POSITION_AFTER_COMMIT
from infrastructure.driver_reads import fetch_one
from infrastructure.hints import Publisher
from infrastructure.idempotency import Result
from infrastructure.plans import Write
from infrastructure.projections import project

log = logging.getLogger("chatapi")
POSITION_NOW = text(POSITION_AFTER_COMMIT)
Outcome = TypeVar("Outcome")


class UnitOfWork:
    """Used once per command: `with uow: ...; uow.commit()`.

    Handlers write through `connection` with SQL statements on the SQLModel tables; the
    ORM's identity map and flush machinery would only add work to single-statement writes.
    `commit` projects the recorded events into the read models before committing, so the
    read models change in the same transaction as the write model, or not at all. Once
    committed, and never before, the chats whose messages changed are published as hints to
    their event streams.
    """

    connection: Connection

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        idempotency_ttl: float,
        publisher: Publisher,
        tokens: bool = True,
    ) -> None:
        """`tokens`: whether writes give consistency tokens, which only reads from replicas
        need (READ_DATABASE_URL): without them, a write spares the round trip."""
        self._engine = engine
        self._tokens = tokens
        self._clock = clock
        self._idempotency_ttl = idempotency_ttl
        self._publisher = publisher
        self._events: list[tuple[DomainEvent, bool]] = []  # and whether projected

    def __enter__(self) -> Self:
        self.connection = self._engine.connect()
        self.connection.begin()
        self._events = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Anything not committed by now is abandoned; close() rolls it back.
        self.connection.close()

    def record(self, event: DomainEvent, projected: bool = False) -> None:
        """`event` happened in this transaction: projected at commit (unless the statement
        that made it `projected` it too), published once committed."""
        self._events.append((event, projected))

    def run(self, write: Write[Outcome]) -> Outcome:
        """The `write`'s statement in this transaction: its event recorded (projected by the
        statement), its result returned (or its error raised); commit to keep it."""
        row = fetch_one(self.connection, write.statement, write.params)
        event, result = write.outcome(row)
        self.record(event, projected=True)
        return result

    def once(
        self,
        principal: Principal,
        operation: str,
        key: str | None,
        request: dict[str, Any],
        result_type: type[Result],
        run: Callable[[], Result],
        chat_id: int | None = None,
        result_chat: Callable[[Result], int] | None = None,
    ) -> Result:
        """`run()`, once per idempotency key: a key used before gets the result it had then,
        marked replayed, if `request` is the same (else IdempotencyKeyReused).

        The key is claimed in this transaction and its result stored with the command's
        changes at commit. Keys are per caller and operation, and per chat when `chat_id` is
        given: two callers never share a key's result. A key goes with its chat: `chat_id`'s,
        or for a command that makes one, `result_chat(result)`'s, so that a retry after the
        chat's delete never replays an answer naming a chat that is gone.
        """
        if key is None:
            return run()
        scope = idempotency.scope_of(principal, operation, chat_id)

        def claim() -> Result | None:
            return idempotency.claim(
                self.connection,
                self._clock(),
                self._idempotency_ttl,
                scope,
                key,
                chat_id,
                request,
                result_type,
            )

        first = claim()
        named = None if first is None or result_chat is None else result_chat(first)
        if named is not None and idempotency.chat_is_deleted(self.connection, named):
            # Deleted since, its purge still to come (which would take the key with it): the
            # key is forgotten now, and this run is the first.
            idempotency.forget(self.connection, scope, key)
            first = claim()
        if first is not None:
            return first
        result = run()
        owner = None if result_chat is None else result_chat(result)
        idempotency.remember(self.connection, scope, key, result, owner)
        return result

    def consistency_token(self) -> str | None:
        """The primary's WAL position now (None on SQLite, or without replicas to read
        from): once committed, or once a replay has found its first result, a replica that
        has replayed it shows this command's work.

        Ends the transaction: anything not committed by now is abandoned (a replay's). One
        round trip: the driver is in autocommit for this statement alone, so there is no
        BEGIN before it nor ROLLBACK after (SQLAlchemy's AUTOCOMMIT option would cost a SET
        when the connection goes back to the pool).
        """
        if not self._tokens or self.connection.dialect.name != "postgresql":
            return None  # a replay's transaction ends as the connection goes back
        if self.connection.in_transaction():
            self.connection.rollback()
        driver: Any = self.connection.connection.dbapi_connection
        driver.autocommit = True  # psycopg2: a flag of the client's, nothing sent
        try:
            row = fetch_one(self.connection, POSITION_NOW, {})
        except DBAPIError as exc:
            # The command is committed: its answer must say so, without a token then (a
            # read without one may be stale) rather than fail as if nothing was stored.
            log.warning("no consistency token after a commit: %s", exc.orig)
            return None
        finally:
            if not driver.closed:
                driver.autocommit = False
        return None if row is None else str(row[0])

    def commit(self) -> None:
        for event, projected in self._events:
            if not projected:
                project(self.connection, event)
        ensure_awaited()  # a request answered 503 meanwhile: roll back, keep nothing
        self.connection.commit()
        events, self._events = self._events, []
        publish_committed(self._publisher, [event for event, _ in events])


def publish_committed(publisher: Publisher, events: list[DomainEvent]) -> None:
    """Hint the chats these committed events changed.

    After the commit: a NOTIFY inside the transaction would hold a cluster-wide lock across
    its flush, and a stream woken earlier would read before the change is there. This
    process's streams get the messages too: one that continues a stream's seq is sent
    without a read. Every chat with news is hinted: posts', deletes' and membership
    changes'.
    """
    posted: dict[int, list[MessagePosted]] = {}
    changed: set[int] = set()
    for event in events:
        if isinstance(event, MessagePosted):
            posted.setdefault(event.chat_id, []).append(event)
        if not isinstance(event, ChatCreated):  # nobody follows a chat not yet made
            changed.add(event.chat_id)
    publisher.publish(changed, posted)
