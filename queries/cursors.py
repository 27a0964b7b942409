"""Opaque keyset cursors: where the next page starts, as a URL-safe token.

A cursor is base64url-encoded JSON naming its kind, so that a cursor of one listing given
to another, or any string that is not a cursor, is refused as invalid input (a 422), never
misread. Cursors carry positions only, nothing secret: a hand-made one merely starts a page
somewhere else.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.errors import InvalidInput
from domain.rules import is_possible_id

# Longer than any cursor this module makes; anything longer is not worth decoding.
MAX_CURSOR_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ChatListPosition:
    """The last chat of a page of the chat list: the next page starts after it."""

    last_activity_at: datetime
    chat_id: int


@dataclass(frozen=True, slots=True)
class HistoryPosition:
    """The oldest message of a page of a chat's history: the next page is older than it."""

    chat_id: int
    message_id: int


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(cursor: str, kind: str, field: str) -> dict[str, Any]:
    invalid = InvalidInput(field, f"{field} is not a cursor returned by this listing")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise invalid
    return payload


def _possible_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and is_possible_id(value)


def encode_chat_list(position: ChatListPosition) -> str:
    return _encode(
        {"k": "chats", "at": position.last_activity_at.isoformat(), "id": position.chat_id}
    )


def decode_chat_list(cursor: str, field: str = "cursor") -> ChatListPosition:
    payload = _decode(cursor, "chats", field)
    at, chat_id = payload.get("at"), payload.get("id")
    invalid = InvalidInput(field, f"{field} is not a cursor returned by this listing")
    if not isinstance(at, str) or not _possible_id(chat_id):
        raise invalid
    try:
        last_activity_at = datetime.fromisoformat(at)
        if last_activity_at.tzinfo is None:
            raise invalid
        # Any offset names the same instant; UTC is how the read model stores and compares
        # it. Near year 1 or 9999 the conversion can leave the datetime range.
        last_activity_at = last_activity_at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid from None
    assert isinstance(chat_id, int)
    return ChatListPosition(last_activity_at=last_activity_at, chat_id=chat_id)


def encode_history(position: HistoryPosition) -> str:
    return _encode({"k": "messages", "chat": position.chat_id, "id": position.message_id})


def decode_history(cursor: str, chat_id: int, field: str = "before") -> HistoryPosition:
    payload = _decode(cursor, "messages", field)
    cursor_chat, message_id = payload.get("chat"), payload.get("id")
    if not _possible_id(cursor_chat) or not _possible_id(message_id):
        raise InvalidInput(field, f"{field} is not a cursor returned by this listing")
    if cursor_chat != chat_id:
        raise InvalidInput(field, f"{field} is a cursor of another chat's history")
    assert isinstance(message_id, int)
    return HistoryPosition(chat_id=chat_id, message_id=message_id)
