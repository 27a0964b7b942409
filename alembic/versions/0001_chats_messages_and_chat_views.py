"""chats, messages and chat views

Revision ID: 0001
Revises:
Create Date: 2026-11-23 07:23:23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("id", Id, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint("length(title) BETWEEN 1 AND 200", name=op.f("ck_chats_title_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "messages",
        sa.Column("id", Id, nullable=False),
        sa.Column("chat_id", Id, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint(
            "length(text) BETWEEN 1 AND 5000", name=op.f("ck_messages_text_length")
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_messages_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_messages_chat_id_id", "messages", ["chat_id", "id"])

    op.create_table(
        "chat_views",
        sa.Column("chat_id", Id, autoincrement=False, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("message_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_message_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chat_views")),
    )
    # The read side's own mapping of the append-only message log: queries read this view,
    # never the write model's table, so the two can diverge without touching the queries.
    op.execute(
        "CREATE VIEW message_views AS SELECT id, chat_id, text, created_at FROM messages"
    )


def downgrade() -> None:
    op.execute("DROP VIEW message_views")
    op.drop_table("chat_views")
    op.drop_index("ix_messages_chat_id_id", table_name="messages")
    op.drop_table("messages")
    op.drop_table("chats")
