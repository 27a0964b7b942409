"""The condition "messages of one chat up to an id", in the form each database serves from
the (chat_id, id) index, ix_messages_chat_id_id, whatever the chat's size.

SQLite's planner takes `chat_id = :chat AND id <= :last` to that index. PostgreSQL, given
`chat_id = :chat`, treats chat_id as fixed, so an ORDER BY id DESC LIMIT n looks as well
served by the primary key read backwards, filtering on chat_id; for a big chat whose newest
messages are older than other chats' it then reads past all of those. A range over the
whole index key, (chat_id, id) BETWEEN (:chat, 0) AND (:chat, :last), can only be served by
the (chat_id, id) index, in its own order.
"""

from typing import Any

from sqlalchemy import ColumnElement, and_, tuple_


def up_to(dialect: str, chat_id: Any, message_id: Any, chat: Any, last: Any) -> ColumnElement[bool]:
    """Rows of `chat` with `message_id <= last`, for `ORDER BY chat_id DESC, id DESC`."""
    if dialect == "postgresql":
        return tuple_(chat_id, message_id).between(tuple_(chat, 0), tuple_(chat, last))
    return and_(chat_id == chat, message_id <= last)
