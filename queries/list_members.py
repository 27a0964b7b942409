"""A chat's members, for its members and for services."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, select

from domain.errors import ChatNotFound
from domain.principals import Principal
from domain.rules import is_possible_id
from infrastructure.read_models import chat_member_views, chat_views
from infrastructure.read_targets import ReadTargets
from queries.visibility import members_only, per_caller, viewer_params


@dataclass(frozen=True, slots=True)
class ListMembers:
    chat_id: int
    # A write's token: the read shows that write, even from a replica (read_targets.py).
    consistency_token: str | None = None
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class MemberDTO:
    user_id: str
    role: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class MembersDTO:
    chat_id: int
    members: tuple[MemberDTO, ...]  # in the order they joined


# The chat's view row with its members: one snapshot tells whether the chat exists (to this
# caller) and who is in it. Built once.
MEMBERS = per_caller(
    select(chat_member_views.c.user_id, chat_member_views.c.role, chat_member_views.c.added_at)
    .select_from(
        chat_views.outerjoin(
            chat_member_views, and_(chat_member_views.c.chat_id == chat_views.c.chat_id)
        )
    )
    .where(chat_views.c.chat_id == bindparam("chat_id"))
    .order_by(chat_member_views.c.added_at, chat_member_views.c.user_id)
)


class ListMembersHandler:
    def __init__(self, reads: ReadTargets) -> None:
        self._reads = reads

    def __call__(self, query: ListMembers) -> MembersDTO:
        if not is_possible_id(query.chat_id):
            raise ChatNotFound(query.chat_id)
        rows = self._reads.rows(
            query.consistency_token,
            MEMBERS[members_only(query.principal)],
            {"chat_id": query.chat_id, **viewer_params(query.principal)},
        )
        if not rows:
            raise ChatNotFound(query.chat_id)
        members = tuple(
            MemberDTO(row.user_id, row.role, row.added_at) for row in rows if row.user_id
        )
        return MembersDTO(query.chat_id, members)
