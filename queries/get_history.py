from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, bindparam, select, true

from domain.errors import ChatNotFound
from domain.rules import DEFAULT_LIMIT, MAX_ID, is_possible_id, validate_limit
from infrastructure.read_models import chat_views
from queries.cursors import HistoryPosition, decode_history, encode_history
from queries.dtos import MessageDTO, message_of
from queries.newest_messages import newest_messages


@dataclass(frozen=True, slots=True)
class GetHistory:
    chat_id: int
    before: str | None = None  # a `next_before` cursor; None for the newest page
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class HistoryDTO:
    chat_id: int
    messages: tuple[MessageDTO, ...]  # oldest first within the page
    next_before: str | None  # continues into older messages; None when there are none


def history_page(dialect: str) -> Select[Any]:
    """Up to `:limit` messages of `:chat_id` with ids up to `:last`, newest first.

    One statement with the chat's view row, so the chat's existence and its page come from
    one snapshot.
    """
    newest_first = newest_messages(dialect, bindparam("last"), "page")
    return (
        select(
            newest_first.c.id, newest_first.c.seq, newest_first.c.text, newest_first.c.created_at
        )
        .select_from(chat_views.outerjoin(newest_first, true()))
        .where(chat_views.c.chat_id == bindparam("chat_id"))
        .order_by(newest_first.c.id.desc())
    )


# Built once per database: constructing it per call costs more than running it.
HISTORY_PAGE = {dialect: history_page(dialect) for dialect in ("postgresql", "sqlite")}


class GetHistoryHandler:
    """A page of a chat's messages older than a cursor, by keyset on (chat_id, id).

    The page is an index range scan that starts at the cursor, so its cost does not depend
    on how long the chat is or how far back the page lies; no OFFSET anywhere.
    """

    def __init__(self, read_engine: Engine) -> None:
        self._engine = read_engine

    def __call__(self, query: GetHistory) -> HistoryDTO:
        limit = validate_limit(query.limit)
        if not is_possible_id(query.chat_id):
            raise ChatNotFound(query.chat_id)
        last = MAX_ID
        if query.before is not None:
            last = decode_history(query.before, query.chat_id).message_id - 1
        with self._engine.connect() as connection:
            rows = connection.execute(
                HISTORY_PAGE[self._engine.dialect.name],
                # One more than the page tells whether there is an older page.
                {"chat_id": query.chat_id, "last": last, "limit": limit + 1},
            ).all()
        if not rows:
            raise ChatNotFound(query.chat_id)
        found = [row for row in rows if row.id is not None]
        kept = found[:limit]
        messages = tuple(message_of(query.chat_id, row) for row in reversed(kept))
        next_before = None
        if len(found) > limit:
            next_before = encode_history(HistoryPosition(query.chat_id, messages[0].id))
        return HistoryDTO(chat_id=query.chat_id, messages=messages, next_before=next_before)
