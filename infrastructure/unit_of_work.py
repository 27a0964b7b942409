"""One session, one transaction: what a command handler changes, and the events it records."""

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlmodel import Session

from domain.events import DomainEvent
from infrastructure.projections import project


class UnitOfWork:
    """Used once per command: `with uow: ...; uow.commit()`.

    `commit` projects the recorded events into the read models before committing, so the
    read models change in the same transaction as the write model, or not at all.
    """

    session: Session

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory
        self._events: list[DomainEvent] = []

    def __enter__(self) -> Self:
        self.session = self._session_factory()
        self._events = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Anything not committed by now is abandoned; close() rolls it back.
        self.session.close()

    def record(self, event: DomainEvent) -> None:
        self._events.append(event)

    def commit(self) -> None:
        for event in self._events:
            project(self.session, event)
        self.session.commit()
        self._events.clear()
