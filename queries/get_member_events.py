"""A chat's membership changes after a position of its feed: what an event stream sends as
`member.added`, `member.updated` and `member.removed`."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select

from domain.principals import Principal
from infrastructure.read_models import member_event_views
from infrastructure.read_targets import ReadTargets
from queries.visibility import members_only, per_caller, viewer_params

PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class GetMemberEvents:
    chat_id: int
    after: int  # a position of the chat's feed (MessagesAfterDTO.last_member_event)
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class MemberEventDTO:
    position: int
    chat_id: int
    kind: str  # added, updated, removed
    user_id: str
    role: str | None  # None once removed
    at: datetime


# For a user, only while they are a member (queries/visibility.py).
EVENTS_AFTER = per_caller(
    select(
        member_event_views.c.id,
        member_event_views.c.kind,
        member_event_views.c.user_id,
        member_event_views.c.role,
        member_event_views.c.at,
    )
    .where(
        member_event_views.c.chat_id == bindparam("chat_id"),
        member_event_views.c.id > bindparam("after"),
    )
    .order_by(member_event_views.c.id)
    .limit(PAGE_SIZE)
)


class GetMemberEventsHandler:
    """Read when a page of GetMessagesAfter shows the chat's feed has moved."""

    def __init__(self, reads: ReadTargets) -> None:
        self._reads = reads

    def __call__(self, query: GetMemberEvents) -> tuple[MemberEventDTO, ...]:
        rows = self._reads.rows(
            None,
            EVENTS_AFTER[members_only(query.principal)],
            {"chat_id": query.chat_id, "after": query.after, **viewer_params(query.principal)},
        )
        return tuple(
            MemberEventDTO(row.id, query.chat_id, row.kind, row.user_id, row.role, row.at)
            for row in rows
        )
