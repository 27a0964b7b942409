"""The read models: what the projections and the rebuild write, and all the queries read.

Queries import this module, never the write model's tables.py.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, MetaData, Table, Text
from sqlmodel import Field, SQLModel

from infrastructure.metadata import core_table
from infrastructure.types import Id, UTCDateTime


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
    # The newest message's seq (0 while it has none): where a reader's resume point ends.
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # The id of the chat's newest membership event (0 while none): an event stream that
    # finds it moved reads the events after the one it knows.
    last_member_event: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))


class ChatMemberView(SQLModel, table=True):
    """One row per member of a chat, kept by the projections: who may read the chat (folded
    into every query's statement), its member list, and each user's chat list, ordered by
    the chat's last activity, which every post copies to its chat's rows."""

    __tablename__ = "chat_member_views"
    __table_args__ = (
        # A user's chat list, newest activity first, read backwards by keyset.
        Index(
            "ix_chat_member_views_user_id_last_activity_at_chat_id",
            "user_id",
            "last_activity_at",
            "chat_id",
        ),
    )

    chat_id: int = Field(sa_column=Column(Id, primary_key=True, autoincrement=False))
    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    role: str = Field(sa_column=Column(Text, nullable=False))
    added_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_activity_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class MemberEventView(SQLModel, table=True):
    """A chat's membership changes in order, for its event streams (`member.added`,
    `member.updated`, `member.removed`)."""

    __tablename__ = "member_event_views"
    __table_args__ = (
        Index("ix_member_event_views_chat_id_id", "chat_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(Id, primary_key=True))
    chat_id: int = Field(sa_column=Column(Id, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))  # added, updated, removed
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    role: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


chat_views = core_table(ChatView)
chat_member_views = core_table(ChatMemberView)
member_event_views = core_table(MemberEventView)

# The read side's mapping of the append-only message log: a database view over `messages`,
# created by migration 0001 (0004 added seq). Kept off SQLModel.metadata, which Alembic
# compares with the database's tables: there it would look like a table no migration creates.
message_views = Table(
    "message_views",
    MetaData(),
    Column("id", Id),
    Column("chat_id", Id),
    Column("seq", BigInteger),
    Column("text", Text),
    Column("created_at", UTCDateTime),
    Column("author", Text),
)
