from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, select, true

from domain.errors import ChatNotFound, InvalidInput
from domain.principals import Principal
from domain.rules import DEFAULT_LIMIT, MAX_ID, is_possible_id, validate_limit
from infrastructure.consistency import checked
from infrastructure.plans import Read
from infrastructure.read_models import chat_views, message_views
from infrastructure.read_targets import PlannedQuery
from queries.cursors import HistoryPosition, HistoryPositionById, decode_history, encode_history
from queries.documents import message_json
from queries.dtos import MessageDTO, message_from
from queries.newest_messages import newest_messages
from queries.visibility import members_only, per_caller, viewer_params

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GetHistory:
    chat_id: int
    before: str | None = None  # a `next_before` cursor; None for the newest page
    limit: int = DEFAULT_LIMIT
    # A write's token: the read shows that write, even from a replica (read_targets.py).
    consistency_token: str | None = None
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class HistoryDTO:
    chat_id: int
    messages: tuple[MessageDTO, ...]  # oldest first within the page
    next_before: str | None  # continues into older messages; None when there are none


def history_page(last: Any) -> Select[Any]:
    """Up to `:limit` messages of `:chat_id` with seqs up to `last`, newest first.

    One statement with the chat's view row, so the chat's existence and its page come from
    one snapshot.
    """
    newest_first = newest_messages("page", last)
    return (
        select(
            newest_first.c.id,
            newest_first.c.seq,
            newest_first.c.text,
            newest_first.c.created_at,
            newest_first.c.author,
        )
        .select_from(chat_views.outerjoin(newest_first, true()))
        .where(chat_views.c.chat_id == bindparam("chat_id"))
        .order_by(newest_first.c.seq.desc())
    )


# The seq of the message `:message_id` of chat `:chat_id` (null if the chat has none such),
# for a cursor that names the message by id, as those made before seqs did.
CURSOR_SEQ = (
    select(message_views.c.seq)
    .where(
        message_views.c.chat_id == bindparam("chat_id"),
        message_views.c.id == bindparam("message_id"),
    )
    .scalar_subquery()
)

# Built once: constructing them per call costs more than running them.
# By whether the caller is a user, who sees only their chats (queries/visibility.py).
HISTORY_PAGE = per_caller(history_page(bindparam("last")))
HISTORY_PAGE_BY_ID = per_caller(
    history_page(CURSOR_SEQ - 1).add_columns(CURSOR_SEQ.label("cursor_seq"))
)
CURSOR_SEQ_COLUMN = 5  # after the message's five


Rows = list[tuple[Any, ...]]
# What a page's rows make: the DTO for scripts, the JSON bytes for the HTTP path.
PageOf = Callable[[int, Rows, str | None], T]


def history_read(query: GetHistory, page_of: PageOf[T]) -> Read[T]:
    """The statement of `query`'s page, and what its rows make: `page_of(chat_id, rows,
    next_before)` with the page's rows, oldest first."""
    limit = validate_limit(query.limit)
    if not is_possible_id(query.chat_id):
        raise ChatNotFound(query.chat_id)
    position = None
    if query.before is not None:
        position = decode_history(query.before, query.chat_id)
    # One more than the page tells whether there is an older page.
    params = {"chat_id": query.chat_id, "limit": limit + 1, **viewer_params(query.principal)}
    statements = HISTORY_PAGE
    by_id = isinstance(position, HistoryPositionById)
    if isinstance(position, HistoryPositionById):
        statements = HISTORY_PAGE_BY_ID
        params["message_id"] = position.message_id
    else:
        params["last"] = MAX_ID if position is None else position.seq - 1

    def page(rows: Rows) -> T:
        if not rows:
            raise ChatNotFound(query.chat_id)
        if by_id and rows[0][CURSOR_SEQ_COLUMN] is None:
            raise InvalidInput("before", "before is not a cursor returned by this listing")
        found = [row for row in rows if row[0] is not None]
        kept = found[:limit]
        kept.reverse()
        next_before = None
        if len(found) > limit:  # kept[0] is the oldest: its seq is where the next page ends
            next_before = encode_history(HistoryPosition(query.chat_id, kept[0][1]))
        return page_of(query.chat_id, kept, next_before)

    statement = statements[members_only(query.principal)]
    return Read(statement, params, page, checked(query.consistency_token))


def history_dto(chat_id: int, rows: Rows, next_before: str | None) -> HistoryDTO:
    messages = tuple(message_from(chat_id, row) for row in rows)
    return HistoryDTO(chat_id=chat_id, messages=messages, next_before=next_before)


def history_document(chat_id: int, rows: Rows, next_before: str | None) -> bytes:
    """The page as HistoryResponse writes it (queries/documents.py)."""
    messages = ",".join(message_json(chat_id, *row[:5]) for row in rows)
    older = "" if next_before is None else f',"next_before":"{next_before}"'
    return f'{{"chat_id":{chat_id},"messages":[{messages}]{older}}}'.encode()


class GetHistoryHandler(PlannedQuery[GetHistory, HistoryDTO]):
    """A page of a chat's messages older than a cursor, by keyset on (chat_id, seq).

    The page is an index range scan that starts at the cursor, so its cost does not depend
    on how long the chat is or how far back the page lies; no OFFSET anywhere. A cursor that
    names its message by id (made before the upgrade) is resolved to the message's seq in
    the same statement, by the primary key.
    """

    def plan(self, query: GetHistory) -> Read[HistoryDTO]:
        """The statement and what its rows make, to be run here or on the event loop."""
        return history_read(query, history_dto)


class GetHistoryDocumentHandler(PlannedQuery[GetHistory, bytes]):
    """The same page as the JSON bytes of GET /chats/{chat_id}/messages/ (no DTOs, no
    pydantic pass: the HTTP path's)."""

    def plan(self, query: GetHistory) -> Read[bytes]:
        return history_read(query, history_document)
