from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete

from commands.access import require_owner
from domain.errors import ChatNotFound
from domain.events import ChatDeleted
from domain.principals import Principal
from domain.rules import is_possible_id
from infrastructure.tables import chats
from infrastructure.unit_of_work import UnitOfWork

DELETE_CHAT = delete(chats).where(chats.c.id == bindparam("chat_id")).returning(chats.c.id)


@dataclass(frozen=True, slots=True)
class DeleteChat:
    chat_id: int
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class DeleteChatResult(ChatDeleted):
    """The chat deleted, and the token a read brings back to see it gone."""

    consistency_token: str | None = field(default=None, compare=False)


class DeleteChatHandler:
    """Deletes a chat, for a service or one of the chat's owners; the database's ON DELETE
    CASCADE removes its messages and members."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    def __call__(self, command: DeleteChat) -> DeleteChatResult:
        chat_id = command.chat_id
        if not is_possible_id(chat_id):
            raise ChatNotFound(chat_id)
        with self._uow() as uow:
            require_owner(uow, command.principal, chat_id, "delete it")
            deleted = uow.connection.execute(DELETE_CHAT, {"chat_id": chat_id}).first()
            if deleted is None:
                raise ChatNotFound(chat_id)
            uow.record(ChatDeleted(chat_id=chat_id))
            uow.commit()
            return DeleteChatResult(chat_id, uow.consistency_token())
