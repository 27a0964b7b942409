"""A chat's messages after a seq, oldest first: catching up, and every read of an event stream."""

from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, select

from domain.errors import ChatNotFound, InvalidInput, NotAMember, ResumePointAhead
from domain.principals import Principal
from domain.rules import DEFAULT_LIMIT, MAX_ID, is_possible_id, validate_limit
from infrastructure.read_models import chat_views, message_views
from infrastructure.read_targets import ReadTargets
from queries.dtos import MessageDTO, message_of
from queries.visibility import VIEWER_IS_MEMBER, members_only, viewer_params


@dataclass(frozen=True, slots=True)
class GetMessagesAfter:
    chat_id: int
    after: int  # a seq; 0 for the chat's first message on
    limit: int = DEFAULT_LIMIT
    # A write's token: the read shows that write, even from a replica (read_targets.py).
    consistency_token: str | None = None
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class MessagesAfterDTO:
    chat_id: int
    last_seq: int  # the chat's newest seq when this page was read
    messages: tuple[MessageDTO, ...]  # oldest first, seqs after `after`
    next_after: int | None  # pass back as `after` for the next page; None at the chat's end
    # The chat's newest membership event (queries/get_member_events.py) as this page saw it.
    last_member_event: int = 0


# The chat's view row with the page: one snapshot tells whether the chat exists, where it
# ends, and what follows `after`, read from the (chat_id, seq) index. Built once.
PAGE_AFTER = (
    select(
        chat_views.c.last_seq,
        chat_views.c.last_member_event,
        message_views.c.id,
        message_views.c.seq,
        message_views.c.text,
        message_views.c.created_at,
        message_views.c.author,
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
# For a user: whether they are a member, as a column rather than a filter, so that an event
# stream can tell "removed from the chat" from "the chat is gone" (NotAMember).
PAGES_AFTER = {False: PAGE_AFTER, True: PAGE_AFTER.add_columns(VIEWER_IS_MEMBER.label("member"))}


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
        users_only = members_only(query.principal)
        rows = self._reads.rows(
            query.consistency_token,
            PAGES_AFTER[users_only],
            {
                "chat_id": query.chat_id,
                "after": after,
                "limit": limit,
                **viewer_params(query.principal),
            },
        )
        if not rows:
            raise ChatNotFound(query.chat_id)
        if users_only and not rows[0].member:
            raise NotAMember(query.chat_id)
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
            last_member_event=rows[0].last_member_event,
        )
