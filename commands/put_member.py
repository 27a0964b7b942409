from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import bindparam, insert, update

from commands.access import lock_chat, owner_count, require_owner, role_of
from domain.errors import ChatNotFound, LastOwner
from domain.events import MemberAdded, MemberRoleChanged, Role
from domain.principals import Principal, validate_user_id
from domain.rules import is_possible_id, validate_role
from infrastructure.clock import Clock
from infrastructure.tables import chat_members
from infrastructure.unit_of_work import UnitOfWork

INSERT_MEMBER = insert(chat_members)
CHANGE_ROLE = (
    update(chat_members)
    .where(chat_members.c.chat_id == bindparam("chat"), chat_members.c.user_id == bindparam("user"))
    .values(role=bindparam("new_role"))
)


@dataclass(frozen=True, slots=True)
class PutMember:
    """Add a user to a chat with a role, or change the role of a member."""

    chat_id: int
    user_id: str
    role: str
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class MemberResult:
    chat_id: int
    user_id: str
    role: Role
    added_at: datetime
    added: bool  # a new member (201), rather than a role set again or changed (200)
    consistency_token: str | None = field(default=None, compare=False)


class PutMemberHandler:
    """For a service or an owner of the chat; a member gets Forbidden, a user who is not a
    member ChatNotFound. The last owner cannot be made a plain member (LastOwner)."""

    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: PutMember) -> MemberResult:
        chat_id = command.chat_id
        user_id = validate_user_id(command.user_id)
        role = validate_role(command.role)
        if not is_possible_id(chat_id):
            raise ChatNotFound(chat_id)
        with self._uow() as uow:
            lock_chat(uow, chat_id)  # membership changes of a chat take turns
            require_owner(uow, command.principal, chat_id, "manage its members")
            now = self._clock()
            found = role_of(uow, chat_id, user_id)
            if found is None:
                values = {"chat_id": chat_id, "user_id": user_id, "role": role, "added_at": now}
                uow.connection.execute(INSERT_MEMBER, values)
                uow.record(MemberAdded(chat_id, user_id, role, now))
                result = MemberResult(chat_id, user_id, role, now, added=True)
            else:
                current, added_at = found
                if current != role:
                    if current == "owner" and owner_count(uow, chat_id) == 1:
                        raise LastOwner(chat_id)
                    params = {"chat": chat_id, "user": user_id, "new_role": role}
                    uow.connection.execute(CHANGE_ROLE, params)
                    uow.record(MemberRoleChanged(chat_id, user_id, role, added_at, now))
                result = MemberResult(chat_id, user_id, role, added_at, added=False)
            uow.commit()
            return replace(result, consistency_token=uow.consistency_token())
