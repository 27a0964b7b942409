"""Rebuilds every read model from the write model, in one transaction."""

from sqlalchemy import Engine, delete, func, insert, select, text

from infrastructure.projections import PREVIEW_LENGTH
from infrastructure.read_models import chat_views
from infrastructure.tables import chats, messages


def rebuild_read_models(write_engine: Engine) -> int:
    """Replace the chat views with ones computed from chats and messages; returns their count.

    Safe while the service runs: writers are held off until the rebuild commits, so no
    projection update can land on a row that the rebuild is about to replace.
    """
    newest = messages.alias("newest")
    # Per chat, one row read backwards from the (chat_id, seq) index.
    newest_text = (
        select(func.substr(newest.c.text, 1, PREVIEW_LENGTH))
        .where(newest.c.chat_id == chats.c.id)
        .order_by(newest.c.seq.desc())
        .limit(1)
        .correlate(chats)
        .scalar_subquery()
    )
    per_chat = (
        select(
            chats.c.id,
            chats.c.title,
            chats.c.created_at,
            func.count(messages.c.id),
            func.max(messages.c.created_at),
            func.coalesce(func.max(messages.c.created_at), chats.c.created_at),
            newest_text,
            func.coalesce(func.max(messages.c.seq), 0),
        )
        .select_from(chats.outerjoin(messages, messages.c.chat_id == chats.c.id))
        .group_by(chats.c.id, chats.c.title, chats.c.created_at)
    )
    with write_engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("LOCK TABLE chats, messages IN SHARE MODE"))
        connection.execute(delete(chat_views))
        connection.execute(
            insert(chat_views).from_select(
                [
                    "chat_id",
                    "title",
                    "created_at",
                    "message_count",
                    "last_message_at",
                    "last_activity_at",
                    "last_message_preview",
                    "last_seq",
                ],
                per_chat,
            )
        )
        return connection.scalar(select(func.count()).select_from(chat_views)) or 0
