"""What happened: recorded by command handlers, projected into the read models."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["owner", "member"]


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
    author: str | None = None  # the posting user's id, or the one a service named; or none


@dataclass(frozen=True, slots=True)
class ChatDeleted:
    chat_id: int


@dataclass(frozen=True, slots=True)
class MemberAdded:
    chat_id: int
    user_id: str
    role: Role
    added_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRoleChanged:
    chat_id: int
    user_id: str
    role: Role
    added_at: datetime  # when the user first joined: unchanged
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    chat_id: int
    user_id: str
    removed_at: datetime


MembershipChanged = MemberAdded | MemberRoleChanged | MemberRemoved
DomainEvent = ChatCreated | MessagePosted | ChatDeleted | MembershipChanged
