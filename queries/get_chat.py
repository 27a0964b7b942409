from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, select, true

from domain.errors import ChatNotFound
from domain.rules import DEFAULT_LIMIT, is_possible_id, validate_limit
from queries.cursors import HistoryPosition, encode_history
from queries.views import chat_views, message_views


@dataclass(frozen=True, slots=True)
class GetChat:
    chat_id: int
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class MessageDTO:
    id: int
    chat_id: int
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChatDetailDTO:
    id: int
    title: str
    created_at: datetime
    message_count: int
    last_message_at: datetime | None
    messages: tuple[MessageDTO, ...]  # the last `limit` messages, oldest first
    next_before: str | None  # continues into older history (GetHistory); None if none


# Built once, from the read side's own views: constructing it per call costs more than the
# query. One statement, so the chat's counters and its messages come from one snapshot.
LAST_MESSAGES = (
    select(message_views.c.id, message_views.c.text, message_views.c.created_at)
    .where(message_views.c.chat_id == bindparam("chat_id"))
    .order_by(message_views.c.id.desc())
    .limit(bindparam("limit"))
    .subquery("last_messages")
)
CHAT_WITH_LAST_MESSAGES = (
    select(
        chat_views.c.title,
        chat_views.c.created_at,
        chat_views.c.message_count,
        chat_views.c.last_message_at,
        LAST_MESSAGES.c.id,
        LAST_MESSAGES.c.text,
        LAST_MESSAGES.c.created_at.label("message_created_at"),
    )
    .select_from(chat_views.outerjoin(LAST_MESSAGES, true()))
    .where(chat_views.c.chat_id == bindparam("chat_id"))
    .order_by(LAST_MESSAGES.c.id)
)


class GetChatHandler:
    """A chat with its last messages, read from the chat view and the message view only."""

    def __init__(self, read_engine: Engine) -> None:
        self._engine = read_engine

    def __call__(self, query: GetChat) -> ChatDetailDTO:
        limit = validate_limit(query.limit)
        if not is_possible_id(query.chat_id):
            raise ChatNotFound(query.chat_id)
        with self._engine.connect() as connection:
            rows = connection.execute(
                CHAT_WITH_LAST_MESSAGES, {"chat_id": query.chat_id, "limit": limit}
            ).all()
        if not rows:
            raise ChatNotFound(query.chat_id)
        chat = rows[0]
        messages = tuple(
            MessageDTO(id=message_id, chat_id=query.chat_id, text=text, created_at=created_at)
            for *_, message_id, text, created_at in rows
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
                encode_history(HistoryPosition(query.chat_id, messages[0].id)) if older else None
            ),
        )
