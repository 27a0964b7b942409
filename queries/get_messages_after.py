"""A chat's messages after a seq, oldest first: catching up, and every read of an event stream."""

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select

from domain.errors import ChatNotFound, InvalidInput, ResumePointAhead
from domain.rules import DEFAULT_LIMIT, MAX_ID, is_possible_id, validate_limit
from infrastructure.read_models import chat_views, message_views
from infrastructure.read_targets import ReadTargets
from queries.dtos import MessageDTO, message_of


@dataclass(frozen=True, slots=True)
class GetMessagesAfter:
    chat_id: int
    after: int  # a seq; 0 for the chat's first message on
    limit: int = DEFAULT_LIMIT
    # A write's token: the read shows that write, even from a replica (read_targets.py).
    consistency_token: str | None = None


@dataclass(frozen=True, slots=True)
class MessagesAfterDTO:
    chat_id: int
    last_seq: int  # the chat's newest seq when this page was read
    messages: tuple[MessageDTO, ...]  # oldest first, seqs after `after`
    next_after: int | None  # pass back as `after` for the next page; None at the chat's end


# The chat's view row with the page: one snapshot tells whether the chat exists, where it
# ends, and what follows `after`, read from the (chat_id, seq) index. Built once.
PAGE_AFTER = (
    select(
        chat_views.c.last_seq,
        message_views.c.id,
        message_views.c.seq,
        message_views.c.text,
        message_views.c.created_at,
    )
    .select_from(
        chat_views.outerjoin(
            message_views,
            and_(
                message_views.c.chat_id == chat_views.c.chat_id,
                message_views.c.seq > bindparam("after"),
            ),
        )
    )
    .where(chat_views.c.chat_id == bindparam("chat_id"))
    .order_by(message_views.c.seq)
    .limit(bindparam("limit"))
)


def validate_after(after: int) -> int:
    if isinstance(after, bool) or not 0 <= after <= MAX_ID:
        raise InvalidInput("after", "after must be a seq: an integer from 0")
    return after


class GetMessagesAfterHandler:
    def __init__(self, reads: ReadTargets) -> None:
        self._reads = reads

    def __call__(self, query: GetMessagesAfter) -> MessagesAfterDTO:
        after = validate_after(query.after)
        limit = validate_limit(query.limit)
        if not is_possible_id(query.chat_id):
            raise ChatNotFound(query.chat_id)
        rows = self._reads.rows(
            query.consistency_token,
            PAGE_AFTER,
            {"chat_id": query.chat_id, "after": after, "limit": limit},
        )
        if not rows:
            raise ChatNotFound(query.chat_id)
        last_seq = rows[0].last_seq
        if after > last_seq:
            raise ResumePointAhead(query.chat_id, after, last_seq)
        messages = tuple(message_of(query.chat_id, row) for row in rows if row.id is not None)
        more = bool(messages) and messages[-1].seq < last_seq
        return MessagesAfterDTO(
            chat_id=query.chat_id,
            last_seq=last_seq,
            messages=messages,
            next_after=messages[-1].seq if more else None,
        )
