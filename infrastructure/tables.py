"""The database schema as SQLModel tables: the write model and the read models.

Alembic migrations are generated from, and checked against, this metadata.
"""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, Text
from sqlmodel import Field, SQLModel

from infrastructure.types import Id, UTCDateTime

# Must be set before the first table class so every constraint gets a stable name.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# --- write model -------------------------------------------------------------------------


class ChatRecord(SQLModel, table=True):
    __tablename__ = "chats"
    __table_args__ = (
        CheckConstraint("length(title) BETWEEN 1 AND 200", name="title_length"),
        {"sqlite_autoincrement": True},  # never hand a deleted chat's id to a new one
    )

    id: int | None = Field(default=None, sa_column=Column(Id, primary_key=True))
    title: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class MessageRecord(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("length(text) BETWEEN 1 AND 5000", name="text_length"),
        # Serves the last-N read, keyset paging and the cascade from chats.
        Index("ix_messages_chat_id_id", "chat_id", "id"),
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


# --- read models ---------------------------------------------------------------------------


class ChatView(SQLModel, table=True):
    """One row per chat, kept by the projections, for the chat read queries."""

    __tablename__ = "chat_views"
    __table_args__ = (
        # The chat list's order, newest activity first, read backwards by keyset.
        Index("ix_chat_views_last_activity_at_chat_id", "last_activity_at", "chat_id"),
    )

    # No foreign key: a read model may live elsewhere and is rebuilt from the write model.
    chat_id: int = Field(sa_column=Column(Id, primary_key=True, autoincrement=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    message_count: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    last_message_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # The newest message's time, or the chat's creation time while it has none.
    last_activity_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_message_preview: str | None = Field(default=None, sa_column=Column(Text))
