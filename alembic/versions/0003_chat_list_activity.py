"""chat list: last activity and preview on chat views

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)
PREVIEW_LENGTH = 100  # infrastructure.projections.PREVIEW_LENGTH when this was written


def upgrade() -> None:
    with op.batch_alter_table("chat_views") as batch:
        batch.add_column(sa.Column("last_activity_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("last_message_preview", sa.Text(), nullable=True))
    # Fill the new columns of existing rows from the write model, as a rebuild would.
    op.execute("UPDATE chat_views SET last_activity_at = COALESCE(last_message_at, created_at)")
    op.execute(
        f"""
        UPDATE chat_views SET last_message_preview = (
            SELECT substr(m.text, 1, {PREVIEW_LENGTH}) FROM messages AS m
            WHERE m.chat_id = chat_views.chat_id ORDER BY m.id DESC LIMIT 1
        )
        """
    )
    with op.batch_alter_table("chat_views") as batch:
        batch.alter_column("last_activity_at", existing_type=Timestamp, nullable=False)
    op.create_index(
        "ix_chat_views_last_activity_at_chat_id", "chat_views", ["last_activity_at", "chat_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_chat_views_last_activity_at_chat_id", table_name="chat_views")
    with op.batch_alter_table("chat_views") as batch:
        batch.drop_column("last_message_preview")
        batch.drop_column("last_activity_at")
