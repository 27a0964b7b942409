"""Which chats a query shows its caller: every chat to a service, to a user only the chats
they are a member of. Folded into each query's one statement (no round trip of its own), so
to a user a chat they are not in is missing, the same 404 as one that never existed."""

from typing import Any, TypeVar

from sqlalchemy import Exists, Select, bindparam, exists

from domain.principals import Principal
from infrastructure.read_models import chat_member_views

# The chat `:chat_id` has the user `:viewer` among its members: one primary-key probe.
VIEWER_IS_MEMBER: Exists = exists().where(
    chat_member_views.c.chat_id == bindparam("chat_id"),
    chat_member_views.c.user_id == bindparam("viewer"),
)

S = TypeVar("S", bound=Select[Any])


def per_caller(statement: S) -> dict[bool, S]:
    """The statement for services (False) and, filtered to members, for users (True)."""
    return {False: statement, True: statement.where(VIEWER_IS_MEMBER)}


def members_only(principal: Principal) -> bool:
    return principal.user_id is not None


def viewer_params(principal: Principal) -> dict[str, Any]:
    """The parameters per_caller's user statement needs beside the query's own."""
    return {} if principal.user_id is None else {"viewer": principal.user_id}
