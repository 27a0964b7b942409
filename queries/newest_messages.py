"""A chat's newest messages from the message view: the keyset read GetChat and GetHistory share."""

from typing import Any

from sqlalchemy import Subquery, bindparam, select

from infrastructure.read_models import message_views


def newest_messages(name: str, last: Any = None) -> Subquery:
    """Up to `:limit` messages of chat `:chat_id`, newest first; with `last`, only those
    with seqs up to it.

    Read backwards from the (chat_id, seq) index, whatever the chat's size: the only index
    that gives a chat's messages in seq order.
    """
    chat = message_views.c.chat_id == bindparam("chat_id")
    return (
        select(
            message_views.c.id,
            message_views.c.seq,
            message_views.c.text,
            message_views.c.created_at,
            message_views.c.author,
        )
        .where(chat if last is None else chat & (message_views.c.seq <= last))
        .order_by(message_views.c.seq.desc())
        .limit(bindparam("limit"))
        .subquery(name)
    )
