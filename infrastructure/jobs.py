"""Background jobs: the work no request should wait for, one row of `jobs` each.

A job is done in steps, each its own short transaction: claim the job due first with
`FOR UPDATE SKIP LOCKED` (so workers, in as many processes as there are, never run one job at
once; a worker killed mid-step has its transaction rolled back and the row unlocked, and the
next claim takes the job over), do one bounded piece of it, record the progress in the row,
commit. A step commits whole or not at all: there is no half-done state to recover.

Kinds:
- `purge_chat`: the messages of a deleted chat (DeleteChat leaves its tombstone and this job),
  by ranges of seq; then its idempotency keys, in batches; then the chat's row, whose
  ON DELETE CASCADE takes what is left (members, stream tickets), and the job's own row.
- `purge_idempotency_keys`, `purge_stream_tickets`: periodic; each step forgets what has
  expired and schedules the next round. One row per kind, made by `ensure_periodic_jobs`.

A new kind (a search index's catch-up) is one more step function in STEPS.
On SQLite, which has one writer at a time, `FOR UPDATE SKIP LOCKED` is left out by
SQLAlchemy, and the jobs run in one process anyway.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BindParameter,
    Connection,
    RowMapping,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy import update as update_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from infrastructure import idempotency, stream_tickets
from infrastructure.tables import chats, idempotency_keys, jobs, messages
from infrastructure.types import UTCDateTime

PURGE_CHAT = "purge_chat"
PURGE_IDEMPOTENCY_KEYS = "purge_idempotency_keys"
PURGE_STREAM_TICKETS = "purge_stream_tickets"
PERIODIC = (PURGE_IDEMPOTENCY_KEYS, PURGE_STREAM_TICKETS)

NOW = bindparam("now", type_=UTCDateTime)
CHAT: BindParameter[int] = bindparam("chat_id")
JOB = jobs.c.id == bindparam("job_id")

CLAIM = (
    select(jobs)
    .where(jobs.c.run_after <= NOW)
    .order_by(jobs.c.run_after, jobs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
SCHEDULE_CHAT_PURGE = insert(jobs).values(
    kind=PURGE_CHAT, chat_id=CHAT, run_after=NOW, created_at=NOW, done=0
)
LAST_SEQ = select(chats.c.last_seq).where(chats.c.id == CHAT)
# A range of seqs, read from the (chat_id, seq) index right where the last step stopped.
PURGE_MESSAGES = delete(messages).where(
    messages.c.chat_id == CHAT,
    messages.c.seq > bindparam("after"),
    messages.c.seq <= bindparam("upto"),
)
SEEN_PURGED = select(func.count()).where(
    messages.c.chat_id == CHAT,
    messages.c.seq > bindparam("after"),
    messages.c.seq <= bindparam("done"),
)
PURGE_CHAT_KEYS = delete(idempotency_keys).where(
    tuple_(idempotency_keys.c.scope, idempotency_keys.c.key).in_(
        select(idempotency_keys.c.scope, idempotency_keys.c.key)
        .where(idempotency_keys.c.chat_id == CHAT)
        .limit(bindparam("batch"))
    )
)
DELETE_CHAT_ROW = delete(chats).where(chats.c.id == CHAT, chats.c.deleted_at.is_not(None))
PROGRESS = update_(jobs).where(JOB).values(done=bindparam("done"))
RESCHEDULE = (
    update_(jobs)
    .where(JOB)
    .values(run_after=bindparam("run_after", type_=UTCDateTime), done=jobs.c.done + bindparam("n"))
)
FINISH = delete(jobs).where(JOB)
BACKLOG = select(
    jobs.c.id, jobs.c.kind, jobs.c.chat_id, jobs.c.run_after, jobs.c.done, jobs.c.created_at
).order_by(jobs.c.run_after, jobs.c.id)


@dataclass(frozen=True, slots=True)
class JobSettings:
    batch_size: int  # rows one step deletes at most
    idempotency_ttl: float  # seconds a key is kept
    purge_interval: float  # seconds between the periodic purges' rounds


@dataclass(frozen=True, slots=True)
class Step:
    """What one step of a job did, for the log and the worker's status."""

    job_id: int
    kind: str
    chat_id: int | None
    deleted: int  # rows this step deleted
    done: int  # the job's progress after it: messages' seq purged to, or rows in all
    finished: bool  # a chat's purge is complete (the row is gone); a periodic round is done


StepFunction = Callable[[Connection, RowMapping, datetime, JobSettings], Step]


def schedule_chat_purge(connection: Connection, chat_id: int, now: datetime) -> None:
    """In the deleting transaction: the job that purges the chat once it commits."""
    connection.execute(SCHEDULE_CHAT_PURGE, {"chat_id": chat_id, "now": now})


def ensure_periodic_jobs(connection: Connection, now: datetime) -> None:
    """Make the periodic jobs' rows if missing; any number of processes may do it at once."""
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    for kind in PERIODIC:
        statement = (
            dialect_insert(jobs)
            .values(kind=kind, chat_id=None, run_after=now, created_at=now, done=0)
            .on_conflict_do_nothing()
        )
        connection.execute(statement)


def run_step(connection: Connection, now: datetime, settings: JobSettings) -> Step | None:
    """Claim the job due first and do one step of it, in the caller's transaction, which
    the caller commits; None when no job is due (or every due one is someone else's)."""
    job = connection.execute(CLAIM, {"now": now}).mappings().first()
    if job is None:
        return None
    return STEPS[job["kind"]](connection, job, now, settings)


def backlog(connection: Connection) -> list[dict[str, object]]:
    """Every job, the one due first first: what `chatapi jobs` shows."""
    return [dict(row) for row in connection.execute(BACKLOG).mappings()]


def purge_chat(
    connection: Connection, job: RowMapping, now: datetime, settings: JobSettings
) -> Step:
    """One step of a deleted chat's purge: the next range of its messages; once they are all
    gone, its idempotency keys (a batch), then its row, in the same step when they fit, so a
    small chat is purged in one transaction."""
    chat_id, purged_to, batch = job["chat_id"], job["done"], settings.batch_size
    params = {"chat_id": chat_id, "job_id": job["id"]}
    if purged_to > 0 and connection.dialect.name == "postgresql":
        # Read back the range the last step deleted: PostgreSQL marks those index entries
        # dead as it passes them, while they are few. Left to the end, the cascade from the
        # chat's row would walk every entry of a million-message chat, row by row.
        seen = {**params, "after": max(purged_to - batch, 0), "done": purged_to}
        connection.execute(SEEN_PURGED, seen)
    last_seq = connection.execute(LAST_SEQ, params).scalar() or 0
    deleted = 0
    if purged_to < last_seq:
        upto = min(purged_to + batch, last_seq)
        deleted = connection.execute(
            PURGE_MESSAGES, {**params, "after": purged_to, "upto": upto}
        ).rowcount
        connection.execute(PROGRESS, {**params, "done": upto})
        purged_to = upto
        if upto < last_seq:
            return Step(job["id"], PURGE_CHAT, chat_id, deleted, upto, finished=False)
    keys = connection.execute(PURGE_CHAT_KEYS, {**params, "batch": batch}).rowcount
    if keys == batch:  # there may be more
        return Step(job["id"], PURGE_CHAT, chat_id, deleted + keys, purged_to, finished=False)
    connection.execute(DELETE_CHAT_ROW, params)  # members and tickets go with it
    connection.execute(FINISH, params)
    return Step(job["id"], PURGE_CHAT, chat_id, deleted + keys, purged_to, finished=True)


def periodic(purge: Callable[[Connection, datetime, JobSettings], int]) -> StepFunction:
    """A periodic purge's step: the purge, and its next round an interval from now."""

    def step(connection: Connection, job: RowMapping, now: datetime, settings: JobSettings) -> Step:
        deleted = purge(connection, now, settings)
        next_round = now + timedelta(seconds=settings.purge_interval)
        connection.execute(RESCHEDULE, {"job_id": job["id"], "run_after": next_round, "n": deleted})
        return Step(job["id"], job["kind"], None, deleted, job["done"] + deleted, finished=True)

    return step


STEPS: dict[str, StepFunction] = {
    PURGE_CHAT: purge_chat,
    PURGE_IDEMPOTENCY_KEYS: periodic(
        lambda connection, now, settings: idempotency.purge_in(
            connection, now, settings.idempotency_ttl
        )
    ),
    PURGE_STREAM_TICKETS: periodic(
        lambda connection, now, settings: stream_tickets.purge(connection, now)
    ),
}
