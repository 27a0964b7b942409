from collections.abc import Callable
from dataclasses import dataclass

from commands.clock import Clock
from domain.events import ChatCreated
from domain.rules import normalize_title
from infrastructure.tables import ChatRecord
from infrastructure.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class CreateChat:
    title: str


class CreateChatHandler:
    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: CreateChat) -> ChatCreated:
        chat = ChatRecord(title=normalize_title(command.title), created_at=self._clock())
        with self._uow() as uow:
            uow.session.add(chat)
            uow.session.flush()
            assert chat.id is not None  # assigned by the INSERT
            event = ChatCreated(chat_id=chat.id, title=chat.title, created_at=chat.created_at)
            uow.record(event)
            uow.commit()
        return event
