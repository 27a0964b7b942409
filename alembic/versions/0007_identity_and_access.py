"""identity and access: chat members, message authors, API keys, stream tickets

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

VIEW_BEFORE = "SELECT id, chat_id, seq, text, created_at FROM messages"
VIEW_AFTER = "SELECT id, chat_id, seq, text, created_at, author FROM messages"


def upgrade() -> None:
    # The view depends on messages' columns.
    op.execute("DROP VIEW message_views")
    # Nullable, no default: instant on PostgreSQL however many messages there are; every
    # message stored before has no author.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("author", sa.Text(), nullable=True))
    op.execute(f"CREATE VIEW message_views AS {VIEW_AFTER}")

    op.create_table(
        "chat_members",
        sa.Column("chat_id", Id, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("added_at", Timestamp, nullable=False),
        sa.CheckConstraint("role IN ('owner', 'member')", name=op.f("ck_chat_members_role")),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_chat_members_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_chat_members")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "stream_tickets",
        sa.Column("ticket_hash", sa.Text(), nullable=False),
        sa.Column("chat_id", Id, nullable=False),
        sa.Column("principal_kind", sa.Text(), nullable=False),
        sa.Column("principal_id", sa.Text(), nullable=False),
        sa.Column("principal_expires_at", Timestamp, nullable=True),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_stream_tickets_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_hash", name=op.f("pk_stream_tickets")),
    )
    op.create_index("ix_stream_tickets_expires_at", "stream_tickets", ["expires_at"])

    with op.batch_alter_table("chat_views") as batch:
        batch.add_column(
            sa.Column("last_member_event", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "chat_member_views",
        sa.Column("chat_id", Id, autoincrement=False, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("added_at", Timestamp, nullable=False),
        sa.Column("last_activity_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_chat_member_views")),
    )
    op.create_index(
        "ix_chat_member_views_user_id_last_activity_at_chat_id",
        "chat_member_views",
        ["user_id", "last_activity_at", "chat_id"],
    )
    op.create_table(
        "member_event_views",
        sa.Column("id", Id, nullable=False),
        sa.Column("chat_id", Id, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_event_views")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_member_event_views_chat_id_id", "member_event_views", ["chat_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_member_event_views_chat_id_id", table_name="member_event_views")
    op.drop_table("member_event_views")
    op.drop_index(
        "ix_chat_member_views_user_id_last_activity_at_chat_id", table_name="chat_member_views"
    )
    op.drop_table("chat_member_views")
    with op.batch_alter_table("chat_views") as batch:
        batch.drop_column("last_member_event")
    op.drop_index("ix_stream_tickets_expires_at", table_name="stream_tickets")
    op.drop_table("stream_tickets")
    op.drop_table("api_keys")
    op.drop_table("chat_members")
    op.execute("DROP VIEW message_views")
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("author")
    op.execute(f"CREATE VIEW message_views AS {VIEW_BEFORE}")
