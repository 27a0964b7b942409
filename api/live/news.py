"""What is new in a chat after a position: the events a stream is sent, read and encoded once.

A position is a seq and a position of the chat's membership feed. One read (GetMessagesAfter,
then GetMemberEvents if the page shows the feed moved) gives the pieces that follow, in the
order they happened; each piece is one event's bytes and the position right after it. The
chat's writer reads as the service (every event of the chat); a stream that catches up reads
as its caller (a user's reads find the chat only while they are a member: NotAMember).
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.admission import Busy
from api.live import sse
from domain.events import MessagePosted
from domain.principals import Principal
from domain.rules import MAX_LIMIT
from infrastructure.schema import SchemaNotMigrated
from queries.get_member_events import GetMemberEvents, MemberEventDTO
from queries.get_messages_after import GetMessagesAfter

# The database is down or its schema is not there: a stream keeps its place and reads again,
# rather than ending and sending a browser into a reconnect that a 503 would end for good
# (EventSource gives up on any answer but a 200 stream).
UNAVAILABLE = (OperationalError, PoolTimeout, SchemaNotMigrated, Busy)
# The most messages one read takes; a full page is followed by another read at once.
PAGE_SIZE = MAX_LIMIT


@dataclass(frozen=True, slots=True)
class Piece:
    """One event, encoded, and where the chat's feeds stand after it."""

    seq: int  # for a message its seq; for a membership change the seq before it
    member_position: int  # for a change its position; for a message the position before it
    data: bytes
    is_message: bool
    removed_user: str | None = None  # a `member.removed`: that user's streams end after it

    def is_news_to(self, after: int, member_position: int) -> bool:
        if self.is_message:
            return self.seq > after
        return self.member_position > member_position


@dataclass(frozen=True, slots=True)
class News:
    pieces: tuple[Piece, ...]
    after: int  # where the read leaves the chat's feeds
    member_position: int
    at_end: bool  # nothing more after it, as the read found the chat


# A query run in a handler thread, within the request deadlines (api/admission.py).
Run = Callable[[Callable[[Any], Any], Any], Awaitable[Any]]


class NewsReader:
    """The two queries' handlers come from their providers on the first read, not before:
    an app is built before its database is known to be there."""

    def __init__(
        self,
        run: Run,
        messages: Callable[[], Callable[[Any], Any]],
        member_events: Callable[[], Callable[[Any], Any]],
    ) -> None:
        self._run = run
        self._providers = (messages, member_events)
        self._handlers: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None

    async def read(
        self, chat_id: int, after: int, member_position: int | None, principal: Principal
    ) -> News:
        """Raises ChatNotFound once the chat is gone, NotAMember once a user left it (and
        ResumePointAhead for an `after` beyond the chat's end). `member_position` None: no
        membership changes, the feed's position now (a stream's start)."""
        if self._handlers is None:
            self._handlers = (self._providers[0](), self._providers[1]())
        messages, member_events = self._handlers
        query = GetMessagesAfter(chat_id, after, PAGE_SIZE, principal=principal)
        page = await self._run(messages, query)
        changes: list[MemberEventDTO] = []
        start = page.last_member_event if member_position is None else member_position
        position = start
        while page.last_member_event > position:
            changed = GetMemberEvents(chat_id, position, principal=principal)
            events = await self._run(member_events, changed)
            if not events:
                break
            changes.extend(events)
            position = events[-1].position
        last = page.messages[-1].seq if page.messages else after
        pieces = timeline(page.messages, changes, after, start)
        return News(pieces, last, max(position, page.last_member_event), page.next_after is None)


def timeline(
    messages: Sequence[Any], changes: Sequence[MemberEventDTO], after: int, member_position: int
) -> tuple[Piece, ...]:
    """Messages and membership changes in the order they happened: a read that follows a
    change may also find messages posted after it. Stable: each kind keeps its own order; at
    the same time, the message first."""
    entries: list[tuple[datetime, int, Any]] = [(m.created_at, 0, m) for m in messages]
    entries += [(change.at, 1, change) for change in changes]
    if changes:
        entries.sort(key=lambda entry: (entry[0], entry[1]))
    pieces: list[Piece] = []
    seq, position = after, member_position
    for _, kind, entry in entries:
        if kind == 0:
            seq = entry.seq
            pieces.append(Piece(seq, position, sse.message_read(entry), is_message=True))
        else:
            position = entry.position
            removed = entry.user_id if entry.kind == "removed" else None
            pieces.append(Piece(seq, position, sse.member_event(entry), False, removed))
    return tuple(pieces)


def committed(messages: Sequence[MessagePosted], member_position: int) -> tuple[Piece, ...]:
    """This process's commits, as pieces, without a read."""
    return tuple(
        Piece(m.seq, member_position, sse.message_committed(m), is_message=True) for m in messages
    )
