"""The read side's own mapping of the read models it queries.

Queries import these, never the write model's tables: `chat_views` is the projection kept
by infrastructure/projections.py, `message_views` a database view over the message log.
"""

from sqlalchemy import BigInteger, Text, column, table

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
