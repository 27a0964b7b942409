from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, update

from commands.access import LIVE_CHAT, require_owner
from domain.errors import ChatNotFound
from domain.events import ChatDeleted
from domain.principals import Principal
from domain.rules import is_possible_id
from infrastructure.clock import Clock
from infrastructure.jobs import schedule_chat_purge
from infrastructure.tables import chats
from infrastructure.types import UTCDateTime
from infrastructure.unit_of_work import UnitOfWork

# The tombstone, under the row lock a post takes too: a post either committed before it (and
# is purged with the chat) or finds no chat.
MARK_DELETED = (
    update(chats)
    .where(LIVE_CHAT)
    .values(deleted_at=bindparam("now", type_=UTCDateTime))
    .returning(chats.c.id)
)


@dataclass(frozen=True, slots=True)
class DeleteChat:
    chat_id: int
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class DeleteChatResult(ChatDeleted):
    """The chat deleted, and the token a read brings back to see it gone."""

    consistency_token: str | None = field(default=None, compare=False)


class DeleteChatHandler:
    """Deletes a chat, for a service or one of the chat's owners, in one short transaction
    whatever its size: the chat's tombstone, its read-model rows (so every read is a 404 from
    the commit on), and a job that purges its messages afterwards, in batches
    (infrastructure/jobs.py)."""

    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: DeleteChat) -> DeleteChatResult:
        chat_id = command.chat_id
        if not is_possible_id(chat_id):
            raise ChatNotFound(chat_id)
        with self._uow() as uow:
            now = self._clock()
            # First the tombstone: a deleted chat is a 404, never a member's 403.
            marked = uow.connection.execute(MARK_DELETED, {"chat_id": chat_id, "now": now})
            if marked.first() is None:
                raise ChatNotFound(chat_id)
            require_owner(uow, command.principal, chat_id, "delete it")  # rolls back if not
            schedule_chat_purge(uow.connection, chat_id, now)
            uow.record(ChatDeleted(chat_id=chat_id))
            uow.commit()
            return DeleteChatResult(chat_id, uow.consistency_token())
