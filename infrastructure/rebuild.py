"""Rebuilds every read model from the write model, in one transaction."""

from sqlalchemy import Engine, delete, func, insert, select, text, update

from infrastructure.projections import PREVIEW_LENGTH
from infrastructure.read_models import chat_member_views, chat_views, member_event_views
from infrastructure.tables import chat_members, chats, messages


def rebuild_read_models(write_engine: Engine) -> int:
    """Replace the chat views and the member views with ones computed from chats, messages
    and members; returns the chat views' count. The membership feed is history, not state:
    it is kept, and each chat view points at its newest entry again.

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
        .where(chats.c.deleted_at.is_(None))  # a deleted chat awaiting its purge is gone
        .group_by(chats.c.id, chats.c.title, chats.c.created_at)
    )
    with write_engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A maintenance command over every message: not bound by a request's deadline
            # (DB_STATEMENT_TIMEOUT is REQUEST_TIMEOUT's); for this transaction only.
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(text("LOCK TABLE chats, messages, chat_members IN SHARE MODE"))
        connection.execute(delete(chat_views))
        connection.execute(delete(chat_member_views))
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
        connection.execute(
            insert(chat_member_views).from_select(
                ["chat_id", "user_id", "role", "added_at", "last_activity_at"],
                select(
                    chat_members.c.chat_id,
                    chat_members.c.user_id,
                    chat_members.c.role,
                    chat_members.c.added_at,
                    chat_views.c.last_activity_at,
                ).join(chat_views, chat_views.c.chat_id == chat_members.c.chat_id),
            )
        )
        newest_event = (
            select(func.coalesce(func.max(member_event_views.c.id), 0))
            .where(member_event_views.c.chat_id == chat_views.c.chat_id)
            .scalar_subquery()
        )
        connection.execute(update(chat_views).values(last_member_event=newest_event))
        return connection.scalar(select(func.count()).select_from(chat_views)) or 0
