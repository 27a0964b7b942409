"""GET /chats/{id} as the read model writes it: the response document, built by the database.

The same chat as GetChatHandler reads (queries/get_chat.py), from the same rows, but as one
text column that the HTTP path sends as it is: no rows for SQLAlchemy and psycopg2 to turn
into objects, no DTOs, no pydantic pass. Scripts keep GetChatHandler's DTOs; the two are
proved to give identical JSON (tests/integration/test_chat_document.py).
"""

from typing import Any

from sqlalchemy import Select, bindparam, func, select, true

from domain.errors import ChatNotFound
from domain.rules import is_possible_id, validate_limit
from infrastructure.driver_reads import fetch_one
from infrastructure.json_text import (
    comma_joined,
    json_int,
    json_string,
    json_time,
    sql_literal,
    text_of,
)
from infrastructure.read_models import chat_views
from infrastructure.read_targets import ReadTargets
from queries.cursors import HistoryPosition, encode_history
from queries.get_chat import GetChat
from queries.newest_messages import newest_messages


def chat_document() -> Select[Any]:
    """One row: the document up to its closing brace (next_before, a cursor, is added in
    Python), the chat's message count, and the oldest seq and number of messages shown."""
    newest = newest_messages("newest")
    # Oldest first, as the document lists them (SQLite's aggregate keeps this order).
    shown = select(newest).order_by(newest.c.seq).subquery("shown")
    message = text_of(
        '{"id":', json_int(shown.c.id),
        ',"chat_id":', json_int(bindparam("chat_id")),
        ',"seq":', json_int(shown.c.seq),
        ',"text":', json_string(shown.c.text),
        ',"created_at":', json_time(shown.c.created_at),
        "}",
    )  # fmt: skip
    page = select(
        comma_joined(message, shown.c.seq).label("messages"),
        func.min(shown.c.seq).label("oldest_seq"),
        func.count().label("shown"),
    ).subquery("page")
    last_message_at = func.coalesce(json_time(chat_views.c.last_message_at), sql_literal("null"))
    head = text_of(
        '{"id":', json_int(chat_views.c.chat_id),
        ',"title":', json_string(chat_views.c.title),
        ',"created_at":', json_time(chat_views.c.created_at),
        ',"message_count":', json_int(chat_views.c.message_count),
        ',"last_message_at":', last_message_at,
        ',"messages":[', func.coalesce(page.c.messages, sql_literal("")), "]",
    )  # fmt: skip
    return (
        select(head, chat_views.c.message_count, page.c.oldest_seq, page.c.shown)
        .select_from(chat_views.join(page, true()))
        .where(chat_views.c.chat_id == bindparam("chat_id"))
    )


# Built once, and compiled once per dialect (infrastructure/driver_reads.py).
CHAT_DOCUMENT = chat_document()


class GetChatDocumentHandler:
    """A chat with its last messages, as the JSON bytes of GET /chats/{chat_id}."""

    def __init__(self, reads: ReadTargets) -> None:
        self._reads = reads

    def __call__(self, query: GetChat) -> bytes:
        limit = validate_limit(query.limit)
        if not is_possible_id(query.chat_id):
            raise ChatNotFound(query.chat_id)
        params = {"chat_id": query.chat_id, "limit": limit}
        row = self._reads.read(
            query.consistency_token, lambda c: fetch_one(c, CHAT_DOCUMENT, params)
        )
        if row is None:
            raise ChatNotFound(query.chat_id)
        head, message_count, oldest_seq, shown = row
        if shown and message_count > shown:  # one snapshot: exact, as in GetChatHandler
            cursor = encode_history(HistoryPosition(query.chat_id, oldest_seq))
            return f'{head},"next_before":"{cursor}"}}'.encode()
        return f"{head}}}".encode()
