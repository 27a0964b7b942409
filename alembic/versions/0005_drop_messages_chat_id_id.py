"""drop ix_messages_chat_id_id: every read of a chat's messages orders by seq

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every read of a chat's messages now orders by seq, which the unique (chat_id, seq)
    # index serves, as it serves the cascade from chats (chat_id leads either): this one
    # only cost every post a second index entry.
    op.drop_index("ix_messages_chat_id_id", table_name="messages")


def downgrade() -> None:
    # The code before this revision reads the newest messages by id through this index.
    op.create_index("ix_messages_chat_id_id", "messages", ["chat_id", "id"])
