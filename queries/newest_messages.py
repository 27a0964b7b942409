"""A chat's newest messages from the message view: the keyset read GetChat and GetHistory share."""

from typing import Any

from sqlalchemy import Subquery, bindparam, select

from infrastructure import keyset
from infrastructure.read_models import message_views


def newest_messages(dialect: str, last: Any, name: str) -> Subquery:
    """Up to `:limit` messages of chat `:chat_id` with ids up to `last`, newest first,
    read from the (chat_id, id) index whatever the chat's size."""
    return (
        select(
            message_views.c.id,
            message_views.c.seq,
            message_views.c.text,
            message_views.c.created_at,
        )
        .where(
            keyset.up_to(
                dialect, message_views.c.chat_id, message_views.c.id, bindparam("chat_id"), last
            )
        )
        .order_by(message_views.c.chat_id.desc(), message_views.c.id.desc())
        .limit(bindparam("limit"))
        .subquery(name)
    )
