"""a deleted chat's tombstone, and the background jobs that purge what it leaves behind

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
PERIODIC = sa.text("chat_id IS NULL")


def upgrade() -> None:
    # Nullable, no default: instant on PostgreSQL however many chats there are.
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("deleted_at", Timestamp, nullable=True))
    op.create_table(
        "jobs",
        sa.Column("id", Id, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("chat_id", Id, nullable=True),
        sa.Column("run_after", Timestamp, nullable=False),
        sa.Column("done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_run_after", "jobs", ["run_after"])
    op.create_index("ix_jobs_kind_chat_id", "jobs", ["kind", "chat_id"], unique=True)
    op.create_index(
        "ix_jobs_kind",
        "jobs",
        ["kind"],
        unique=True,
        postgresql_where=PERIODIC,
        sqlite_where=PERIODIC,
    )


def downgrade() -> None:
    # A chat still waiting for its purge was deleted: finish the job the old way, at once
    # (each table by name: SQLite's migrations run without its foreign keys' cascades).
    for table in ("messages", "chat_members", "stream_tickets", "idempotency_keys"):
        op.execute(
            f"DELETE FROM {table} WHERE chat_id IN "
            "(SELECT id FROM chats WHERE deleted_at IS NOT NULL)"
        )
    op.execute("DELETE FROM chats WHERE deleted_at IS NOT NULL")
    op.drop_index("ix_jobs_kind", table_name="jobs")
    op.drop_index("ix_jobs_kind_chat_id", table_name="jobs")
    op.drop_index("ix_jobs_run_after", table_name="jobs")
    op.drop_table("jobs")
    # SQLite rebuilds the table for this; it must keep never reusing a deleted chat's id.
    with op.batch_alter_table("chats", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("deleted_at")
