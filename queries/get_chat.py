from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, true

from domain.errors import ChatNotFound
from domain.principals import Principal
from domain.rules import DEFAULT_LIMIT, is_possible_id, validate_limit
from infrastructure.read_models import chat_views
from infrastructure.read_targets import ReadTargets
from queries.cursors import HistoryPosition, encode_history
from queries.dtos import MessageDTO
from queries.newest_messages import newest_messages
from queries.visibility import members_only, per_caller, viewer_params


@dataclass(frozen=True, slots=True)
class GetChat:
    chat_id: int
    limit: int = DEFAULT_LIMIT
    # A write's token: the read shows that write, even from a replica (read_targets.py).
    consistency_token: str | None = None
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class ChatDetailDTO:
    id: int
    title: str
    created_at: datetime
    message_count: int
    last_message_at: datetime | None
    messages: tuple[MessageDTO, ...]  # the last `limit` messages, oldest first
    next_before: str | None  # continues into older history (GetHistory); None if none


def chat_with_last_messages() -> Select[Any]:
    """The chat's view row joined with its last `:limit` messages, oldest first.

    One statement, so the chat's counters and its messages come from one snapshot.
    """
    last_messages = newest_messages("last_messages")
    return (
        select(
            chat_views.c.title,
            chat_views.c.created_at,
            chat_views.c.message_count,
            chat_views.c.last_message_at,
            last_messages.c.id,
            last_messages.c.seq,
            last_messages.c.text,
            last_messages.c.created_at.label("message_created_at"),
            last_messages.c.author,
        )
        .select_from(chat_views.outerjoin(last_messages, true()))
        .where(chat_views.c.chat_id == bindparam("chat_id"))
        .order_by(last_messages.c.seq)
    )


# Built once: constructing it per call costs more than running it. By whether the caller
# is a user, who sees only their chats (queries/visibility.py).
CHAT_WITH_LAST_MESSAGES = per_caller(chat_with_last_messages())


def chat_params(query: GetChat) -> dict[str, Any]:
    """CHAT_WITH_LAST_MESSAGES's parameters for `query`, once its limit and id are checked
    (InvalidInput, ChatNotFound): for GetChatHandler and the HTTP path's document alike."""
    limit = validate_limit(query.limit)
    if not is_possible_id(query.chat_id):
        raise ChatNotFound(query.chat_id)
    return {"chat_id": query.chat_id, "limit": limit, **viewer_params(query.principal)}


class GetChatHandler:
    """A chat with its last messages, read from the chat view and the message view only."""

    def __init__(self, reads: ReadTargets) -> None:
        self._reads = reads

    def __call__(self, query: GetChat) -> ChatDetailDTO:
        statement = CHAT_WITH_LAST_MESSAGES[members_only(query.principal)]
        rows = self._reads.rows(query.consistency_token, statement, chat_params(query))
        if not rows:
            raise ChatNotFound(query.chat_id)
        chat = rows[0]
        messages = tuple(
            MessageDTO(
                id=message_id,
                chat_id=query.chat_id,
                seq=seq,
                text=text,
                created_at=created_at,
                author=author,
            )
            for *_, message_id, seq, text, created_at, author in rows
            if message_id is not None
        )
        # The count and the messages come from one snapshot, so this is exact.
        older = messages and chat.message_count > len(messages)
        return ChatDetailDTO(
            id=query.chat_id,
            title=chat.title,
            created_at=chat.created_at,
            message_count=chat.message_count,
            last_message_at=chat.last_message_at,
            messages=messages,
            next_before=(
                encode_history(HistoryPosition(query.chat_id, messages[0].seq)) if older else None
            ),
        )
