"""Keeps the read models in step with the write model, inside the writer's transaction."""

from typing import Any

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Connection,
    Executable,
    Update,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from domain.events import (
    ChatCreated,
    ChatDeleted,
    DomainEvent,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    MessagePosted,
)
from infrastructure.read_models import chat_member_views, chat_views, member_event_views

# Characters of the newest message shown in the chat list.
PREVIEW_LENGTH = 100

CHAT: BindParameter[int] = bindparam("chat")
# Built once: constructing statements per event costs more than running them.
ADD_CHAT = insert(chat_views).values(
    chat_id=CHAT,
    title=bindparam("name"),
    created_at=bindparam("at"),
    message_count=0,
    last_activity_at=bindparam("at"),
)


def count_message(
    chat: ColumnElement[int],
    seq: ColumnElement[int],
    at: ColumnElement[Any],
    preview: ColumnElement[str],
) -> Update:
    """The chat's view counts a message and shows it as the newest."""
    return (
        update(chat_views)
        .where(chat_views.c.chat_id == chat)
        .values(
            message_count=chat_views.c.message_count + 1,
            last_message_at=at,
            last_activity_at=at,
            last_message_preview=preview,
            last_seq=seq,
        )
    )


# Every member's chat list moves the chat to the front: one row per member, written per
# post, so that a list reads one user's rows in order, whatever how many chats they are in
# (docs/benchmarks.md measures what a post in a chat of 1,000 members costs).
def move_for_members(chat: ColumnElement[int], at: ColumnElement[Any]) -> Update:
    return (
        update(chat_member_views)
        .where(chat_member_views.c.chat_id == chat)
        .values(last_activity_at=at)
    )


def project_posted(posted: CTE) -> list[Update]:
    """MessagePosted's projection, taken from `posted`, the RETURNING (chat_id, seq,
    created_at, text) of the statement that inserts the message: to fold into that
    statement as its WITH (PostgreSQL only), so that one statement writes the message and
    its projection (commands/post_message.py). The same as `projection` does with the event."""
    preview = func.substr(posted.c.text, 1, PREVIEW_LENGTH)  # characters, as text[:n]
    return [
        count_message(posted.c.chat_id, posted.c.seq, posted.c.created_at, preview),
        move_for_members(posted.c.chat_id, posted.c.created_at),
    ]


AT: BindParameter[Any] = bindparam("at")
COUNT_MESSAGE = count_message(CHAT, bindparam("seq"), AT, bindparam("preview"))
MOVE_FOR_MEMBERS = move_for_members(CHAT, AT)
# Both in one statement on PostgreSQL, one round trip: a post runs it on every message.
COUNT_AND_MOVE = MOVE_FOR_MEMBERS.add_cte(COUNT_MESSAGE.cte("counted"))
REMOVE_CHAT = delete(chat_views).where(chat_views.c.chat_id == CHAT)
REMOVE_CHAT_MEMBERS = delete(chat_member_views).where(chat_member_views.c.chat_id == CHAT)
REMOVE_CHAT_MEMBER_EVENTS = delete(member_event_views).where(member_event_views.c.chat_id == CHAT)

USER: BindParameter[str] = bindparam("user")
THIS_MEMBER = (chat_member_views.c.chat_id == CHAT) & (chat_member_views.c.user_id == USER)
# The member's row starts where the chat is in the order: at its last activity.
ADD_MEMBER = insert(chat_member_views).from_select(
    ["chat_id", "user_id", "role", "added_at", "last_activity_at"],
    select(CHAT, USER, bindparam("role"), bindparam("at"), chat_views.c.last_activity_at).where(
        chat_views.c.chat_id == CHAT
    ),
)
CHANGE_ROLE = update(chat_member_views).where(THIS_MEMBER).values(role=bindparam("role"))
REMOVE_MEMBER = delete(chat_member_views).where(THIS_MEMBER)
RECORD_MEMBER_EVENT = insert(member_event_views).values(
    chat_id=CHAT, kind=bindparam("kind"), user_id=USER, role=bindparam("role"), at=bindparam("at")
)
NOTE_MEMBER_EVENT = (
    update(chat_views)
    .where(chat_views.c.chat_id == CHAT)
    .values(
        last_member_event=select(func.max(member_event_views.c.id))
        .where(member_event_views.c.chat_id == CHAT)
        .scalar_subquery()
    )
)


Statement = tuple[Executable, dict[str, Any]]


def project(connection: Connection, event: DomainEvent) -> None:
    """Apply one event to every read model it concerns."""
    for statement, params in projection(event, connection.dialect.name):
        connection.execute(statement, params)


def projection(event: DomainEvent, dialect: str) -> list[Statement]:
    """The statements, with their parameters, that apply `event` to every read model it
    concerns, on `dialect` ("postgresql" or "sqlite"): run by `project` in a handler
    thread, or on the event loop (infrastructure/loop_database.py)."""
    match event:
        case ChatCreated(chat_id=chat_id, title=title, created_at=created_at):
            return [(ADD_CHAT, {"chat": chat_id, "name": title, "at": created_at})]
        case MessagePosted(chat_id=chat_id, seq=seq, text=text, created_at=created_at):
            params = {
                "chat": chat_id,
                "at": created_at,
                "preview": text[:PREVIEW_LENGTH],
                "seq": seq,
            }
            if dialect == "postgresql":
                return [(COUNT_AND_MOVE, params)]
            # SQLite has no UPDATE in WITH
            return [(COUNT_MESSAGE, params), (MOVE_FOR_MEMBERS, params)]
        case ChatDeleted(chat_id=chat_id):
            statements = (REMOVE_CHAT, REMOVE_CHAT_MEMBERS, REMOVE_CHAT_MEMBER_EVENTS)
            return [(statement, {"chat": chat_id}) for statement in statements]
        case MemberAdded(chat_id=chat_id, user_id=user_id, role=role, added_at=at):
            params = {"chat": chat_id, "user": user_id, "role": role, "at": at}
            return [(ADD_MEMBER, params), *_recorded("added", params)]
        case MemberRoleChanged(chat_id=chat_id, user_id=user_id, role=role, changed_at=at):
            params = {"chat": chat_id, "user": user_id, "role": role, "at": at}
            return [(CHANGE_ROLE, params), *_recorded("updated", params)]
        case MemberRemoved(chat_id=chat_id, user_id=user_id, removed_at=at):
            params = {"chat": chat_id, "user": user_id, "role": None, "at": at}
            return [(REMOVE_MEMBER, params), *_recorded("removed", params)]
    return []


def _recorded(kind: str, params: dict[str, Any]) -> list[Statement]:
    """Append the change to the chat's membership feed, for its event streams."""
    return [
        (RECORD_MEMBER_EVENT, {**params, "kind": kind}),
        (NOTE_MEMBER_EVENT, {"chat": params["chat"]}),
    ]
