"""What a caller may do to a chat, read from the write model inside the command's
transaction: the rules every membership-aware command shares."""

from datetime import datetime

from sqlalchemy import BindParameter, bindparam, exists, func, select

from domain.errors import ChatNotFound, Forbidden
from domain.principals import Principal
from infrastructure.tables import chat_members, chats
from infrastructure.unit_of_work import UnitOfWork

CHAT: BindParameter[int] = bindparam("chat_id")
# Correlated to the chat's row in the statement it is folded into (a post's UPDATE).
CALLER_IS_MEMBER = exists().where(
    chat_members.c.chat_id == chats.c.id, chat_members.c.user_id == bindparam("caller")
)
# A chat that exists and is not deleted: a tombstoned chat is missing to every command.
LIVE_CHAT = (chats.c.id == CHAT) & chats.c.deleted_at.is_(None)
# The chat's row, locked until commit: membership changes of one chat, and the posts that
# check membership, take their turns on it.
FIND_CHAT = select(chats.c.id).where(LIVE_CHAT)
LOCK_CHAT = FIND_CHAT.with_for_update()
MEMBER = select(chat_members.c.role, chat_members.c.added_at).where(
    chat_members.c.chat_id == CHAT, chat_members.c.user_id == bindparam("user_id")
)
OWNERS = select(func.count()).where(chat_members.c.chat_id == CHAT, chat_members.c.role == "owner")


def lock_chat(uow: UnitOfWork, chat_id: int, lock: bool = True) -> None:
    """Lock the chat's row (or only find it), or ChatNotFound."""
    statement = LOCK_CHAT if lock else FIND_CHAT
    if uow.connection.execute(statement, {"chat_id": chat_id}).first() is None:
        raise ChatNotFound(chat_id)


def role_of(uow: UnitOfWork, chat_id: int, user_id: str) -> tuple[str, datetime] | None:
    """The user's (role, added_at) in the chat, or None if not a member."""
    row = uow.connection.execute(MEMBER, {"chat_id": chat_id, "user_id": user_id}).first()
    return None if row is None else (row.role, row.added_at)


def caller_role(uow: UnitOfWork, principal: Principal, chat_id: int) -> str:
    """ "owner" for a service (it may do everything), else the user's role; a user who is
    not a member finds no chat (ChatNotFound), word for word as for a missing one."""
    if principal.user_id is None:
        return "owner"
    found = role_of(uow, chat_id, principal.user_id)
    if found is None:
        raise ChatNotFound(chat_id)
    return found[0]


def require_owner(uow: UnitOfWork, principal: Principal, chat_id: int, action: str) -> None:
    if caller_role(uow, principal, chat_id) != "owner":
        raise Forbidden(f"only an owner of chat {chat_id} may {action}")


def owner_count(uow: UnitOfWork, chat_id: int) -> int:
    return int(uow.connection.execute(OWNERS, {"chat_id": chat_id}).scalar_one())
