"""What happened: recorded by command handlers, projected into the read models."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ChatCreated:
    chat_id: int
    title: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MessagePosted:
    message_id: int
    chat_id: int
    seq: int  # 1, 2, 3, ... within the chat, in commit order
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChatDeleted:
    chat_id: int


DomainEvent = ChatCreated | MessagePosted | ChatDeleted
