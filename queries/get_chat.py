from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Engine, Text, text

from domain.errors import ChatNotFound
from domain.rules import DEFAULT_LIMIT, is_possible_id, validate_limit
from infrastructure.types import UTCDateTime
from queries.cursors import HistoryPosition, encode_history


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


# One statement, so the chat's counters and its messages come from one snapshot.
CHAT_WITH_LAST_MESSAGES = text(
    """
    SELECT v.chat_id, v.title, v.created_at, v.message_count, v.last_message_at,
           m.id AS message_id, m.text, m.created_at AS message_created_at
    FROM chat_views AS v
    LEFT JOIN (
        SELECT id, chat_id, text, created_at
        FROM message_views
        WHERE chat_id = :chat_id
        ORDER BY id DESC
        LIMIT :limit
    ) AS m ON m.chat_id = v.chat_id
    WHERE v.chat_id = :chat_id
    ORDER BY m.id
    """
).columns(
    chat_id=BigInteger,
    title=Text,
    created_at=UTCDateTime,
    message_count=BigInteger,
    last_message_at=UTCDateTime,
    message_id=BigInteger,
    text=Text,
    message_created_at=UTCDateTime,
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
            MessageDTO(
                id=row.message_id,
                chat_id=chat.chat_id,
                text=row.text,
                created_at=row.message_created_at,
            )
            for row in rows
            if row.message_id is not None
        )
        # The count and the messages come from one snapshot, so this is exact.
        older = messages and chat.message_count > len(messages)
        return ChatDetailDTO(
            id=chat.chat_id,
            title=chat.title,
            created_at=chat.created_at,
            message_count=chat.message_count,
            last_message_at=chat.last_message_at,
            messages=messages,
            next_before=(
                encode_history(HistoryPosition(chat.chat_id, messages[0].id)) if older else None
            ),
        )
