"""Keeps the read models in step with the write model, inside the writer's transaction."""

from sqlalchemy import delete, insert, update
from sqlmodel import Session

from domain.events import ChatCreated, ChatDeleted, DomainEvent, MessagePosted
from infrastructure.tables import ChatView

chat_views = ChatView.__table__  # type: ignore[attr-defined]

# Characters of the newest message shown in the chat list.
PREVIEW_LENGTH = 100


def project(session: Session, event: DomainEvent) -> None:
    """Apply one event to every read model it concerns."""
    match event:
        case ChatCreated(chat_id=chat_id, title=title, created_at=created_at):
            session.execute(
                insert(chat_views).values(
                    chat_id=chat_id,
                    title=title,
                    created_at=created_at,
                    message_count=0,
                    last_activity_at=created_at,
                )
            )
        case MessagePosted(chat_id=chat_id, text=text, created_at=created_at):
            session.execute(
                update(chat_views)
                .where(chat_views.c.chat_id == chat_id)
                .values(
                    message_count=chat_views.c.message_count + 1,
                    last_message_at=created_at,
                    last_activity_at=created_at,
                    last_message_preview=text[:PREVIEW_LENGTH],
                )
            )
        case ChatDeleted(chat_id=chat_id):
            session.execute(delete(chat_views).where(chat_views.c.chat_id == chat_id))
