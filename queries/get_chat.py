from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Select, bindparam, null, select, true, type_coerce, union_all

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


NAMES = ("id", "seq", "text", "message_created_at", "author")  # a message's, in its rows


def chat_with_last_messages(chat: Select[Any]) -> CompoundSelect[Any]:
    """`chat` (the chat's view row, as the caller may see it) as the first row, then its
    last `:limit` messages, oldest first: each row has the chat's four columns, then a
    message's five, nulls where the row has no such part.

    One statement, so the chat's counters and its messages come from one snapshot; the
    chat's columns come once, not with every message (docs/performance.md).
    """
    visible = chat.cte("chat")
    last = newest_messages("last_messages")
    messages = (last.c.id, last.c.seq, last.c.text, last.c.created_at, last.c.author)
    # Typed nulls, so that SQLAlchemy reads each column as its type (SQLite's times).
    chat_row = select(
        visible,
        *(
            type_coerce(null(), column.type).label(name)
            for column, name in zip(messages, NAMES, strict=True)
        ),
    )
    message_rows = select(
        *(type_coerce(null(), column.type) for column in visible.c), *messages
    ).select_from(visible.join(last, true()))  # none unless the chat's row is there
    union = union_all(chat_row, message_rows)
    return union.order_by(union.selected_columns.seq.nulls_first())


# The chat's view row, for services and, when they are a member, for users.
VISIBLE_CHAT = per_caller(
    select(
        chat_views.c.title,
        chat_views.c.created_at,
        chat_views.c.message_count,
        chat_views.c.last_message_at,
    ).where(chat_views.c.chat_id == bindparam("chat_id"))
)
# Built once: constructing it per call costs more than running it. By whether the caller
# is a user, who sees only their chats (queries/visibility.py).
CHAT_WITH_LAST_MESSAGES = {
    members: chat_with_last_messages(chat) for members, chat in VISIBLE_CHAT.items()
}
# Where a message's columns start in CHAT_WITH_LAST_MESSAGES's rows.
MESSAGE = len(VISIBLE_CHAT[False].selected_columns)


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
            for message_id, seq, text, created_at, author in (row[MESSAGE:] for row in rows[1:])
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
