"""Keeps the read models in step with the write model, inside the writer's transaction."""

from sqlalchemy import Connection, bindparam, delete, insert, update

from domain.events import ChatCreated, ChatDeleted, DomainEvent, MessagePosted
from infrastructure.read_models import chat_views

# Characters of the newest message shown in the chat list.
PREVIEW_LENGTH = 100

# Built once: constructing statements per event costs more than running them.
ADD_CHAT = insert(chat_views).values(
    chat_id=bindparam("chat"),
    title=bindparam("name"),
    created_at=bindparam("at"),
    message_count=0,
    last_activity_at=bindparam("at"),
)
COUNT_MESSAGE = (
    update(chat_views)
    .where(chat_views.c.chat_id == bindparam("chat"))
    .values(
        message_count=chat_views.c.message_count + 1,
        last_message_at=bindparam("at"),
        last_activity_at=bindparam("at"),
        last_message_preview=bindparam("preview"),
        last_seq=bindparam("seq"),
    )
)
REMOVE_CHAT = delete(chat_views).where(chat_views.c.chat_id == bindparam("chat"))


def project(connection: Connection, event: DomainEvent) -> None:
    """Apply one event to every read model it concerns."""
    match event:
        case ChatCreated(chat_id=chat_id, title=title, created_at=created_at):
            connection.execute(ADD_CHAT, {"chat": chat_id, "name": title, "at": created_at})
        case MessagePosted(chat_id=chat_id, seq=seq, text=text, created_at=created_at):
            connection.execute(
                COUNT_MESSAGE,
                {"chat": chat_id, "at": created_at, "preview": text[:PREVIEW_LENGTH], "seq": seq},
            )
        case ChatDeleted(chat_id=chat_id):
            connection.execute(REMOVE_CHAT, {"chat": chat_id})
