"""The read side's own mapping of the read models it queries.

Queries import these, never the write model's tables: `chat_views` is the projection kept
by infrastructure/projections.py, `message_views` a database view over the message log.
"""

from typing import Any

from sqlalchemy import BigInteger, Subquery, Text, bindparam, column, select, table

from infrastructure import keyset
from infrastructure.types import UTCDateTime

chat_views = table(
    "chat_views",
    column("chat_id", BigInteger),
    column("title", Text),
    column("created_at", UTCDateTime),
    column("message_count", BigInteger),
    column("last_message_at", UTCDateTime),
    column("last_activity_at", UTCDateTime),
    column("last_message_preview", Text),
)

message_views = table(
    "message_views",
    column("id", BigInteger),
    column("chat_id", BigInteger),
    column("text", Text),
    column("created_at", UTCDateTime),
)


def newest_messages(dialect: str, last: Any, name: str) -> Subquery:
    """Up to `:limit` messages of chat `:chat_id` with ids up to `last`, newest first,
    read from the (chat_id, id) index whatever the chat's size."""
    return (
        select(message_views.c.id, message_views.c.text, message_views.c.created_at)
        .where(
            keyset.up_to(
                dialect, message_views.c.chat_id, message_views.c.id, bindparam("chat_id"), last
            )
        )
        .order_by(message_views.c.chat_id.desc(), message_views.c.id.desc())
        .limit(bindparam("limit"))
        .subquery(name)
    )
