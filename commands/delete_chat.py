from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete

from domain.errors import ChatNotFound
from domain.events import ChatDeleted
from domain.rules import is_possible_id
from infrastructure.tables import chats
from infrastructure.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class DeleteChat:
    chat_id: int


class DeleteChatHandler:
    """Deletes a chat; the database's ON DELETE CASCADE removes its messages."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    def __call__(self, command: DeleteChat) -> ChatDeleted:
        if not is_possible_id(command.chat_id):
            raise ChatNotFound(command.chat_id)
        with self._uow() as uow:
            deleted = uow.connection.execute(
                delete(chats).where(chats.c.id == command.chat_id).returning(chats.c.id)
            ).first()
            if deleted is None:
                raise ChatNotFound(command.chat_id)
            event = ChatDeleted(chat_id=command.chat_id)
            uow.record(event)
            uow.commit()
        return event
