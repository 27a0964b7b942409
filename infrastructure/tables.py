"""The write model: chats, their messages and the commands' idempotency keys.

Declared as SQLModel table classes; commands build their statements on the typed Core tables
exported below. The read models are declared in read_models.py.
"""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, Text
from sqlmodel import Field, SQLModel

from domain.rules import TEXT_MAX_LENGTH, TITLE_MAX_LENGTH
from infrastructure.metadata import core_table
from infrastructure.types import Id, UTCDateTime


class ChatRecord(SQLModel, table=True):
    __tablename__ = "chats"
    __table_args__ = (
        CheckConstraint(f"length(title) BETWEEN 1 AND {TITLE_MAX_LENGTH}", name="title_length"),
        {"sqlite_autoincrement": True},  # never hand a deleted chat's id to a new one
    )

    id: int | None = Field(default=None, sa_column=Column(Id, primary_key=True))
    title: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # The seq of the chat's newest message: a post increments it under the row lock it
    # takes anyway, so seqs are gapless per chat and follow commit order.
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # The created_at of the chat's newest message (None while it has none), kept under the
    # same lock: a post's time is never earlier than it, so created_at never decreases
    # along seq, and the post reads it from the row it locks instead of from messages.
    last_message_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class MessageRecord(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(f"length(text) BETWEEN 1 AND {TEXT_MAX_LENGTH}", name="text_length"),
        # A message's place in its chat. Serves the last-N read, paging back from a seq and
        # forward after one, and the cascade from chats.
        Index("ix_messages_chat_id_seq", "chat_id", "seq", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(Id, primary_key=True))
    chat_id: int = Field(
        sa_column=Column(
            Id,
            ForeignKey("chats.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class IdempotencyKeyRecord(SQLModel, table=True):
    """A command's idempotency key and the result it produced, replayed to a retry."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_created_at", "created_at"),  # the purge of expired keys
        Index("ix_idempotency_keys_chat_id", "chat_id"),  # the cascade from chats
    )

    # What the key is scoped to: "create_chat", or "post_message:<chat id>".
    scope: str = Field(sa_column=Column(Text, primary_key=True))
    key: str = Field(sa_column=Column(Text, primary_key=True))
    # Keys of a chat's messages go with the chat: a retry after the delete finds no chat.
    chat_id: int | None = Field(
        default=None, sa_column=Column(Id, ForeignKey("chats.id", ondelete="CASCADE"))
    )
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    result: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


# What the commands' statements are built on.
chats = core_table(ChatRecord)
messages = core_table(MessageRecord)
idempotency_keys = core_table(IdempotencyKeyRecord)
