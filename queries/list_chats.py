from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, tuple_

from domain.principals import Principal
from domain.rules import DEFAULT_LIMIT, validate_limit
from infrastructure.consistency import checked
from infrastructure.plans import Read
from infrastructure.read_models import chat_member_views, chat_views
from infrastructure.read_targets import PlannedQuery
from infrastructure.types import UTCDateTime, utc
from queries.cursors import ChatListPosition, decode_chat_list, encode_chat_list
from queries.documents import json_string, json_time

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListChats:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None  # a `next_cursor` from the previous page
    # A write's token: the read shows that write, even from a replica (read_targets.py).
    consistency_token: str | None = None
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class ChatSummaryDTO:
    id: int
    title: str
    created_at: datetime
    message_count: int
    last_message_at: datetime | None
    last_activity_at: datetime
    last_message_preview: str | None


@dataclass(frozen=True, slots=True)
class ChatListDTO:
    chats: tuple[ChatSummaryDTO, ...]  # most recent activity first
    next_cursor: str | None  # None on the last page


# Built once: constructing a statement per call costs more than running it. One more row
# than the page tells whether there is a next page.
SUMMARY = (
    chat_views.c.chat_id,
    chat_views.c.title,
    chat_views.c.created_at,
    chat_views.c.message_count,
    chat_views.c.last_message_at,
    chat_views.c.last_activity_at,
    chat_views.c.last_message_preview,
)
# Every chat, for a service: the chat view in its (last_activity_at, chat_id) index's order.
ALL_FIRST = (
    select(*SUMMARY)
    .order_by(chat_views.c.last_activity_at.desc(), chat_views.c.chat_id.desc())
    .limit(bindparam("limit"))
)
ALL_NEXT = ALL_FIRST.where(
    tuple_(chat_views.c.last_activity_at, chat_views.c.chat_id)
    < tuple_(bindparam("at", type_=UTCDateTime), bindparam("chat_id"))
)
# A user's chats: their rows of the member view in its (user_id, last_activity_at,
# chat_id) index's order, each joined to its chat's view by primary key. A page reads
# `limit` index entries however many chats the user is in.
MINE = chat_member_views.c
MINE_FIRST = (
    select(*SUMMARY)
    .select_from(chat_member_views.join(chat_views, chat_views.c.chat_id == MINE.chat_id))
    .where(MINE.user_id == bindparam("viewer"))
    .order_by(MINE.last_activity_at.desc(), MINE.chat_id.desc())
    .limit(bindparam("limit"))
)
MINE_NEXT = MINE_FIRST.where(
    tuple_(MINE.last_activity_at, MINE.chat_id)
    < tuple_(bindparam("at", type_=UTCDateTime), bindparam("chat_id"))
)
# (first page, next page), by whether the caller is a user.
PAGES = {False: (ALL_FIRST, ALL_NEXT), True: (MINE_FIRST, MINE_NEXT)}


Rows = list[tuple[Any, ...]]
# What a page's rows make: the DTO for scripts, the JSON bytes for the HTTP path.
PageOf = Callable[[Rows, str | None], T]


def list_read(query: ListChats, page_of: PageOf[T]) -> Read[T]:
    """The statement of `query`'s page, and what its rows make: `page_of(rows,
    next_cursor)` with the page's rows, SUMMARY's columns in order."""
    limit = validate_limit(query.limit)
    first, following = PAGES[query.principal.user_id is not None]
    statement, params = first, dict[str, Any](limit=limit + 1, viewer=query.principal.user_id)
    if query.cursor is not None:
        after = decode_chat_list(query.cursor)
        statement = following
        params |= {"at": after.last_activity_at, "chat_id": after.chat_id}

    def page(rows: Rows) -> T:
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_chat_list(ChatListPosition(utc(last[5]), last[0]))
        return page_of(rows[:limit], next_cursor)

    return Read(statement, params, page, checked(query.consistency_token))


def summary_of(values: tuple[Any, ...]) -> ChatSummaryDTO:
    """A chat's summary from the driver's values of SUMMARY's columns, in order."""
    chat_id, title, created_at, count, last_message_at, last_activity_at, preview = values
    return ChatSummaryDTO(
        id=chat_id,
        title=title,
        created_at=utc(created_at),
        message_count=count,
        last_message_at=None if last_message_at is None else utc(last_message_at),
        last_activity_at=utc(last_activity_at),
        last_message_preview=preview,
    )


def list_dto(rows: Rows, next_cursor: str | None) -> ChatListDTO:
    return ChatListDTO(chats=tuple(summary_of(row) for row in rows), next_cursor=next_cursor)


def summary_json(values: tuple[Any, ...]) -> str:
    """A chat's summary as ChatSummaryResponse writes it."""
    chat_id, title, created_at, count, last_message_at, last_activity_at, preview = values
    return (
        f'{{"id":{chat_id},"title":{encode_basestring(title)},'
        f'"created_at":{json_time(created_at)},"message_count":{count},'
        f'"last_message_at":{json_time(last_message_at)},'
        f'"last_activity_at":{json_time(last_activity_at)},'
        f'"last_message_preview":{json_string(preview)}}}'
    )


def list_document(rows: Rows, next_cursor: str | None) -> bytes:
    """The page as ChatListResponse writes it (queries/documents.py)."""
    more = "" if next_cursor is None else f',"next_cursor":"{next_cursor}"'
    return f'{{"chats":[{",".join(map(summary_json, rows))}]{more}}}'.encode()


class ListChatsHandler(PlannedQuery[ListChats, ChatListDTO]):
    """Chats by last activity, newest first, a keyset page at a time: every chat for a
    service, a user's own chats for a user.

    The order is (last_activity_at, chat_id) descending, read from an index on the chat
    view; a page starts strictly after the cursor's position, so a chat that did not move
    while someone pages is seen exactly once, whatever else is written meanwhile.
    """

    def plan(self, query: ListChats) -> Read[ChatListDTO]:
        """The statement and what its rows make, to be run here or on the event loop."""
        return list_read(query, list_dto)


class ListChatsDocumentHandler(PlannedQuery[ListChats, bytes]):
    """The same page as the JSON bytes of GET /chats/ (no DTOs, no pydantic pass: the HTTP
    path's)."""

    def plan(self, query: ListChats) -> Read[bytes]:
        return list_read(query, list_document)
