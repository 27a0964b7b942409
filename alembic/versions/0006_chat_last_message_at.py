"""chats.last_message_at: a post takes its time from the chat's row, not from messages

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True))
    # The newest message is the one with the highest seq; a chat without any keeps NULL.
    op.execute(
        "UPDATE chats SET last_message_at = (SELECT created_at FROM messages "
        "WHERE messages.chat_id = chats.id ORDER BY seq DESC LIMIT 1)"
    )


def downgrade() -> None:
    # SQLite rebuilds the table for this; it must keep never reusing a deleted chat's id.
    with op.batch_alter_table("chats", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("last_message_at")
