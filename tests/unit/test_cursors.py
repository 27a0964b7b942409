"""The cursors' length limit at its edge, on the decoders alone: no database, no HTTP."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import InvalidInput
from queries.cursors import (
    MAX_CURSOR_LENGTH,
    ChatListPosition,
    HistoryPosition,
    decode_chat_list,
    decode_history,
)
from tests.support.cursors import b64, decode_cursor

AT = datetime(2031, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
CHAT_LIST = {"k": "chats", "at": AT.isoformat(), "id": 7}
HISTORY = {"k": "history", "chat": 3, "seq": 9}
# Unpadded base64 is never one character more than a multiple of four long, so the first
# length past the limit that a well-formed cursor can have is two more.
FIRST_LENGTH_PAST_THE_LIMIT = MAX_CURSOR_LENGTH + 2


def of_length(payload: dict[str, Any], length: int) -> str:
    """`payload` as a cursor of exactly `length` characters: its JSON with spaces after the
    opening brace, which JSON allows and the decoders never see."""
    compact = json.dumps(payload, separators=(",", ":"))
    for spaces in range(length):
        cursor = b64(("{" + " " * spaces + compact[1:]).encode())
        if len(cursor) == length:
            assert decode_cursor(cursor) == payload
            return cursor
    raise AssertionError(f"no cursor of {length} characters holds {payload}")


def test_a_chat_list_cursor_of_the_longest_length_is_read() -> None:
    cursor = of_length(CHAT_LIST, MAX_CURSOR_LENGTH)
    assert decode_chat_list(cursor) == ChatListPosition(last_activity_at=AT, chat_id=7)


def test_a_history_cursor_of_the_longest_length_is_read() -> None:
    cursor = of_length(HISTORY, MAX_CURSOR_LENGTH)
    assert decode_history(cursor, chat_id=3) == HistoryPosition(chat_id=3, seq=9)


def test_a_chat_list_cursor_past_the_longest_length_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_chat_list(of_length(CHAT_LIST, FIRST_LENGTH_PAST_THE_LIMIT))
    assert caught.value.field == "cursor"


def test_a_history_cursor_past_the_longest_length_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_history(of_length(HISTORY, FIRST_LENGTH_PAST_THE_LIMIT), chat_id=3)
    assert caught.value.field == "before"
