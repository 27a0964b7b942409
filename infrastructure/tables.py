"""The write model: chats, their members and messages, the commands' idempotency keys, the
credentials the service keeps (API keys' hashes, stream tickets' hashes), and the background
jobs that clean up after them.

Declared as SQLModel table classes; commands build their statements on the typed Core tables
exported below. The read models are declared in read_models.py.
"""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, Text, text
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
    # The tombstone: set by DeleteChat, which makes the chat gone for every command and query
    # at once (its read-model rows go in the same transaction); its messages are purged by a
    # job afterwards, in batches, then this row.
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


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
    # The posting user's id, or the one a service named; None for none, and for every
    # message stored before authors existed.
    author: str | None = Field(default=None, sa_column=Column(Text))


class ChatMemberRecord(SQLModel, table=True):
    """Who belongs to a chat, and as what. The commands' permission checks read it."""

    __tablename__ = "chat_members"
    __table_args__ = (CheckConstraint("role IN ('owner', 'member')", name="role"),)

    chat_id: int = Field(
        sa_column=Column(Id, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    role: str = Field(sa_column=Column(Text, nullable=False))
    added_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ApiKeyRecord(SQLModel, table=True):
    """A service's API key: only its keyed hash is stored (infrastructure/api_keys.py)."""

    __tablename__ = "api_keys"

    id: str = Field(sa_column=Column(Text, primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    # HMAC-SHA256 of the key's secret under the server's pepper, hex.
    secret_hash: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class StreamTicketRecord(SQLModel, table=True):
    """A single-use ticket that opens one event stream of one chat for its caller, for
    browsers, whose EventSource cannot send an Authorization header."""

    __tablename__ = "stream_tickets"
    __table_args__ = (Index("ix_stream_tickets_expires_at", "expires_at"),)  # the purge

    # SHA-256 of the ticket, hex: the ticket itself is never stored.
    ticket_hash: str = Field(sa_column=Column(Text, primary_key=True))
    chat_id: int = Field(
        sa_column=Column(Id, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False)
    )
    # The caller it was issued to (domain.principals.Principal), and when that caller's own
    # credential expires: the stream ends then.
    principal_kind: str = Field(sa_column=Column(Text, nullable=False))
    principal_id: str = Field(sa_column=Column(Text, nullable=False))
    principal_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class IdempotencyKeyRecord(SQLModel, table=True):
    """A command's idempotency key and the result it produced, replayed to a retry."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_created_at", "created_at"),  # the purge of expired keys
        Index("ix_idempotency_keys_chat_id", "chat_id"),  # the cascade from chats
    )

    # What the key is scoped to: the caller, the operation, and the chat of a message:
    # "user:ann/post_message:7"; the local caller's have no prefix ("create_chat").
    scope: str = Field(sa_column=Column(Text, primary_key=True))
    key: str = Field(sa_column=Column(Text, primary_key=True))
    # Keys of a chat's messages go with the chat: a retry after the delete finds no chat.
    chat_id: int | None = Field(
        default=None, sa_column=Column(Id, ForeignKey("chats.id", ondelete="CASCADE"))
    )
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    result: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class JobRecord(SQLModel, table=True):
    """Background work no request waits for (infrastructure/jobs.py): one row per job, claimed
    with FOR UPDATE SKIP LOCKED, so workers share the jobs and a dead one's is taken over."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_run_after", "run_after"),  # the claim: the job due first
        Index("ix_jobs_kind_chat_id", "kind", "chat_id", unique=True),  # one purge per chat
        # One row per periodic kind, however many processes make sure it exists at once.
        Index(
            "ix_jobs_kind",
            "kind",
            unique=True,
            postgresql_where=text("chat_id IS NULL"),
            sqlite_where=text("chat_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(Id, primary_key=True))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    # The chat a chat's job is about; None for the periodic purges. No foreign key: the purge
    # of a chat deletes the chat's row and its own in its last transaction.
    chat_id: int | None = Field(default=None, sa_column=Column(Id))
    run_after: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # Rows deleted so far (a chat's purge) or in all (a periodic purge): the progress report.
    done: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


# What the commands' statements are built on.
chats = core_table(ChatRecord)
messages = core_table(MessageRecord)
idempotency_keys = core_table(IdempotencyKeyRecord)
chat_members = core_table(ChatMemberRecord)
api_keys = core_table(ApiKeyRecord)
stream_tickets = core_table(StreamTicketRecord)
jobs = core_table(JobRecord)
