from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, select

from domain.errors import ChatNotFound, MessageNotFound
from domain.principals import Principal
from domain.rules import is_possible_id
from infrastructure.read_models import chat_views, message_views
from infrastructure.read_targets import ReadTargets
from queries.dtos import MessageDTO, message_of
from queries.visibility import members_only, per_caller, viewer_params


@dataclass(frozen=True, slots=True)
class GetMessage:
    chat_id: int
    message_id: int
    # A write's token: the read shows that write, even from a replica (read_targets.py).
    consistency_token: str | None = None
    principal: Principal = field(kw_only=True)


# The chat's view row with the message, if the chat has it: one snapshot tells which is
# missing. Built once: constructing it per call costs more than running it.
MESSAGE_IN_CHAT = per_caller(
    select(
        message_views.c.id,
        message_views.c.seq,
        message_views.c.text,
        message_views.c.created_at,
        message_views.c.author,
    )
    .select_from(
        chat_views.outerjoin(
            message_views,
            and_(
                message_views.c.chat_id == chat_views.c.chat_id,
                message_views.c.id == bindparam("message_id"),
            ),
        )
    )
    .where(chat_views.c.chat_id == bindparam("chat_id"))
)


class GetMessageHandler:
    """One message of a chat: where a posted message's `Location` leads."""

    def __init__(self, reads: ReadTargets) -> None:
        self._reads = reads

    def __call__(self, query: GetMessage) -> MessageDTO:
        if not is_possible_id(query.chat_id):
            raise ChatNotFound(query.chat_id)
        # An id no row can have finds no message, but the chat may still be missing.
        message_id = query.message_id if is_possible_id(query.message_id) else 0
        rows = self._reads.rows(
            query.consistency_token,
            MESSAGE_IN_CHAT[members_only(query.principal)],
            {"chat_id": query.chat_id, "message_id": message_id, **viewer_params(query.principal)},
        )
        if not rows:
            raise ChatNotFound(query.chat_id)
        row = rows[0]
        if row.id is None:
            raise MessageNotFound(query.chat_id, query.message_id)
        return message_of(query.chat_id, row)
