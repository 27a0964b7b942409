"""The DTOs that more than one query returns."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infrastructure.types import utc


@dataclass(frozen=True, slots=True)
class MessageDTO:
    id: int
    chat_id: int
    seq: int
    text: str
    created_at: datetime
    author: str | None


def message_of(chat_id: int, row: Any) -> MessageDTO:
    """A message from a row of message_views' columns (id, seq, text, created_at, author)."""
    return MessageDTO(
        id=row.id,
        chat_id=chat_id,
        seq=row.seq,
        text=row.text,
        created_at=row.created_at,
        author=row.author,
    )


def message_from(chat_id: int, values: Any) -> MessageDTO:
    """A message from the driver's values of (id, seq, text, created_at, author), in order."""
    message_id, seq, text, created_at, author = values[:5]
    return MessageDTO(message_id, chat_id, seq, text, utc(created_at), author)
