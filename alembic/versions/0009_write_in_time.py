"""write_in_time(deadline): a write on the loop commits only before its request's deadline

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:30:00

A write on the event loop is one statement in its own transaction (infrastructure/
loop_database.py): its COMMIT is not a round trip of its own, sent only while the request
still waits. The statement calls this once its rows are locked and written: past the
deadline (the server's clock), it raises query_canceled and the transaction rolls back,
so that a post answered 503 (a frozen server, a lock held past the deadline) is never
stored after all. PostgreSQL only: SQLite's writes run in a thread.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # NULL: no deadline (a write in a thread's unit of work, which sends its COMMIT itself).
    op.execute(
        """
        CREATE FUNCTION write_in_time(deadline double precision) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            IF deadline IS NOT NULL AND extract(epoch FROM clock_timestamp()) > deadline THEN
                RAISE EXCEPTION 'the write ran past its request''s deadline'
                    USING ERRCODE = 'query_canceled';
            END IF;
            RETURN true;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION write_in_time(double precision)")
