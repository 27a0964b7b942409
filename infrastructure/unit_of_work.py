"""One connection, one transaction: what a command handler changes, and the events it records."""

from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine

from domain.events import DomainEvent
from infrastructure.projections import project


class UnitOfWork:
    """Used once per command: `with uow: ...; uow.commit()`.

    Handlers write through `connection` with SQL statements on the SQLModel tables; the
    ORM's identity map and flush machinery would only add work to single-statement writes.
    `commit` projects the recorded events into the read models before committing, so the
    read models change in the same transaction as the write model, or not at all.
    """

    connection: Connection

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._events: list[DomainEvent] = []

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

    def record(self, event: DomainEvent) -> None:
        self._events.append(event)

    def commit(self) -> None:
        for event in self._events:
            project(self.connection, event)
        self.connection.commit()
        self._events.clear()
