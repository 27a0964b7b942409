"""per-chat message seq: chats.last_seq, messages.seq, chat_views.last_seq, message_views.seq

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEW_BEFORE = "SELECT id, chat_id, text, created_at FROM messages"
VIEW_AFTER = "SELECT id, chat_id, seq, text, created_at FROM messages"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # The view depends on messages' columns (PostgreSQL refuses to alter them under it).
    op.execute("DROP VIEW message_views")
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("chat_views") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False))

    # Existing messages are numbered 1, 2, 3, ... per chat in id order, which was their
    # commit order (ids were taken under the chat's row lock).
    op.execute(
        """
        UPDATE messages SET seq = numbered.seq
        FROM (SELECT id, row_number() OVER (PARTITION BY chat_id ORDER BY id) AS seq
              FROM messages) AS numbered
        WHERE messages.id = numbered.id
        """
    )
    op.execute(
        "UPDATE chats SET last_seq = "
        "(SELECT COALESCE(MAX(seq), 0) FROM messages WHERE messages.chat_id = chats.id)"
    )
    op.execute(
        "UPDATE chat_views SET last_seq = "
        "(SELECT COALESCE(MAX(seq), 0) FROM messages WHERE messages.chat_id = chat_views.chat_id)"
    )
    # A message result remembered under an idempotency key is replayed as it was stored:
    # give the stored ones their seq, so a retry after the upgrade gets the same body.
    if postgres:
        op.execute(
            """
            UPDATE idempotency_keys SET result = (
                result::jsonb || jsonb_build_object('seq', messages.seq)
            )::text
            FROM messages
            WHERE idempotency_keys.scope LIKE 'post_message:%'
              AND idempotency_keys.result IS NOT NULL
              AND messages.id = (idempotency_keys.result::jsonb ->> 'message_id')::bigint
            """
        )
    else:
        op.execute(
            """
            UPDATE idempotency_keys SET result = json_set(result, '$.seq', (
                SELECT seq FROM messages
                WHERE messages.id = json_extract(idempotency_keys.result, '$.message_id')
            ))
            WHERE scope LIKE 'post_message:%' AND result IS NOT NULL
            """
        )

    # SQLite rebuilds the table for this; it must keep never reusing a deleted message's id.
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
    op.create_index("ix_messages_chat_id_seq", "messages", ["chat_id", "seq"], unique=True)
    op.execute(f"CREATE VIEW message_views AS {VIEW_AFTER}")


def downgrade() -> None:
    op.execute("DROP VIEW message_views")
    op.drop_index("ix_messages_chat_id_seq", table_name="messages")
    with op.batch_alter_table("chat_views") as batch:
        batch.drop_column("last_seq")
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("seq")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("last_seq")
    op.execute(f"CREATE VIEW message_views AS {VIEW_BEFORE}")
