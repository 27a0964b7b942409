from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete

from domain.errors import ChatNotFound
from domain.events import ChatDeleted
from domain.rules import is_possible_id
from infrastructure.tables import chats
from infrastructure.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class DeleteChat:
    chat_id: int


@dataclass(frozen=True, slots=True)
class DeleteChatResult(ChatDeleted):
    """The chat deleted, and the token a read brings back to see it gone."""

    consistency_token: str | None = field(default=None, compare=False)


class DeleteChatHandler:
    """Deletes a chat; the database's ON DELETE CASCADE removes its messages."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    def __call__(self, command: DeleteChat) -> DeleteChatResult:
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
            return DeleteChatResult(command.chat_id, uow.consistency_token())
