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
    """The oldest message of a page of a chat's history, by its seq: the next page is older
    than it."""

    chat_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class HistoryPositionById:
    """The same place named by the message's id, as cursors made before seqs named it; the
    query finds the message's seq in the chat (an id not in the chat is not a cursor)."""

    chat_id: int
    message_id: int


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(cursor: str, kinds: tuple[str, ...], field: str) -> dict[str, Any]:
    invalid = InvalidInput(field, f"{field} is not a cursor returned by this listing")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("k") not in kinds:
        raise invalid
    return payload


def _possible_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and is_possible_id(value)


def encode_chat_list(position: ChatListPosition) -> str:
    return _encode(
        {"k": "chats", "at": position.last_activity_at.isoformat(), "id": position.chat_id}
    )


def decode_chat_list(cursor: str, field: str = "cursor") -> ChatListPosition:
    payload = _decode(cursor, ("chats",), field)
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
    return _encode({"k": "history", "chat": position.chat_id, "seq": position.seq})


def decode_history(
    cursor: str, chat_id: int, field: str = "before"
) -> HistoryPosition | HistoryPositionById:
    """A `next_before`: today's, by seq, or one by message id ("messages") that a client
    may still hold from before the upgrade."""
    payload = _decode(cursor, ("history", "messages"), field)
    by_id = payload["k"] == "messages"
    cursor_chat, place = payload.get("chat"), payload.get("id" if by_id else "seq")
    if not _possible_id(cursor_chat) or not _possible_id(place):
        raise InvalidInput(field, f"{field} is not a cursor returned by this listing")
    if cursor_chat != chat_id:
        raise InvalidInput(field, f"{field} is a cursor of another chat's history")
    assert isinstance(place, int)
    if by_id:
        return HistoryPositionById(chat_id=chat_id, message_id=place)
    return HistoryPosition(chat_id=chat_id, seq=place)
