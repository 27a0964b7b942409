from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete

from commands.access import caller_role, lock_chat, owner_count, role_of
from domain.errors import ChatNotFound, Forbidden, LastOwner, MemberNotFound
from domain.events import MemberRemoved
from domain.principals import Principal, validate_user_id
from domain.rules import is_possible_id
from infrastructure.clock import Clock
from infrastructure.tables import chat_members
from infrastructure.unit_of_work import UnitOfWork

DELETE_MEMBER = delete(chat_members).where(
    chat_members.c.chat_id == bindparam("chat"), chat_members.c.user_id == bindparam("user")
)


@dataclass(frozen=True, slots=True)
class RemoveMember:
    chat_id: int
    user_id: str
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class RemoveMemberResult:
    chat_id: int
    user_id: str
    consistency_token: str | None = field(default=None, compare=False)


class RemoveMemberHandler:
    """A service or an owner removes anyone; a member removes only themself (else
    Forbidden). The chat's last owner stays (LastOwner): another owner must come first."""

    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: RemoveMember) -> RemoveMemberResult:
        chat_id = command.chat_id
        user_id = validate_user_id(command.user_id)
        if not is_possible_id(chat_id):
            raise ChatNotFound(chat_id)
        with self._uow() as uow:
            lock_chat(uow, chat_id)
            role = caller_role(uow, command.principal, chat_id)
            if role != "owner" and user_id != command.principal.user_id:
                raise Forbidden(f"a member of chat {chat_id} may remove only themself")
            found = role_of(uow, chat_id, user_id)
            if found is None:
                raise MemberNotFound(chat_id, user_id)
            if found[0] == "owner" and owner_count(uow, chat_id) == 1:
                raise LastOwner(chat_id)
            uow.connection.execute(DELETE_MEMBER, {"chat": chat_id, "user": user_id})
            uow.record(MemberRemoved(chat_id, user_id, self._clock()))
            uow.commit()
            return RemoveMemberResult(chat_id, user_id, uow.consistency_token())
