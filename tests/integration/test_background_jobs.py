"""A delete in two steps, and the background jobs that finish it (issue 23).

DeleteChat leaves a tombstone and a job; from its commit on the chat is gone to every command
and query, while its messages wait for the purge. The purge runs in steps, each committed with
its progress, so a worker killed or stopped at any moment leaves nothing half-done, and the
next one finishes the job. Claims skip locked jobs: two workers never run one job at once.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.issue_stream_ticket import IssueStreamTicket
from commands.post_message import PostMessage
from commands.put_member import PutMember
from commands.remove_member import RemoveMember
from domain.errors import ChatNotFound
from domain.principals import LOCAL, user
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.jobs import PURGE_CHAT, JobSettings, run_step
from queries.get_chat import GetChat
from queries.get_history import GetHistory
from queries.get_message import GetMessage
from queries.get_messages_after import GetMessagesAfter
from queries.list_chats import ListChats
from queries.list_members import ListMembers
from tests.conftest import EmptyDatabases
from tests.support.database import count_rows
from tests.support.servers import container_for, served

ANN = user("ann")
CHATAPI = Path(sys.executable).parent / "chatapi"
WORKER_STOP_SECONDS = 15.0
PROGRESS_SECONDS = 30.0
RACING_POSTS_AT_MOST = 100_000  # each poster stops at its 404 long before


def new_chat(container: Container, messages: int = 3, title: str = "doomed") -> int:
    chat_id = container.create_chat()(CreateChat(title=title, principal=ANN)).chat_id
    for n in range(messages):
        container.post_message()(PostMessage(chat_id=chat_id, text=f"m{n}", principal=ANN))
    return chat_id


def delete(container: Container, chat_id: int) -> None:
    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=ANN))


def bulk_messages(engine: Engine, chat_id: int, count: int) -> None:
    """`count` messages in one statement, as if posted (the purge reads chats.last_seq)."""
    with engine.begin() as connection:
        rows = [
            {"chat_id": chat_id, "seq": seq, "text": f"bulk {seq}"} for seq in range(1, count + 1)
        ]
        connection.execute(
            text(
                "INSERT INTO messages (chat_id, seq, text, created_at) "
                "VALUES (:chat_id, :seq, :text, CURRENT_TIMESTAMP)"
            ),
            rows,
        )
        connection.execute(
            text("UPDATE chats SET last_seq = :count WHERE id = :chat_id"),
            {"chat_id": chat_id, "count": count},
        )


def deleted_chat_of(container: Container, count: int) -> int:
    """A chat of `count` messages, deleted: its purge waits for a worker."""
    chat_id = new_chat(container, messages=0)
    bulk_messages(container.write_engine(), chat_id, count)
    delete(container, chat_id)
    return chat_id


def purged_to(engine: Engine, chat_id: int) -> int | None:
    """How far the chat's purge has gone (its job's `done`), or None once it is finished."""
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT done FROM jobs WHERE kind = :kind AND chat_id = :chat_id"),
            {"kind": PURGE_CHAT, "chat_id": chat_id},
        ).scalar()


def assert_whole_steps(engine: Engine, chat_id: int, last_seq: int) -> int:
    """The messages left are exactly those after the purge's progress: no step half-done."""
    done = purged_to(engine, chat_id)
    assert done is not None
    with engine.connect() as connection:
        low, high, left = connection.execute(
            text("SELECT min(seq), max(seq), count(*) FROM messages WHERE chat_id = :chat_id"),
            {"chat_id": chat_id},
        ).one()
    assert left == last_seq - done
    if left:
        assert (low, high) == (done + 1, last_seq)
    return done


def assert_purged(engine: Engine, chat_id: int) -> None:
    for table, column in (
        ("messages", "chat_id"),
        ("chats", "id"),
        ("chat_members", "chat_id"),
        ("idempotency_keys", "chat_id"),
        ("jobs", "chat_id"),
    ):
        assert count_rows(engine, table, **{column: chat_id}) == 0, table


# --- the first step: the tombstone -----------------------------------------------------------


def test_a_deleted_chat_is_missing_to_every_handler_while_its_purge_waits(
    container: Container,
) -> None:
    chat_id = new_chat(container)
    container.put_member()(PutMember(chat_id=chat_id, user_id="bob", role="member", principal=ANN))
    delete(container, chat_id)
    engine = container.write_engine()
    assert count_rows(engine, "messages", chat_id=chat_id) == 3  # the purge has not run

    reads: list[Callable[[], object]] = [
        lambda: container.get_chat()(GetChat(chat_id=chat_id, principal=ANN)),
        lambda: container.get_chat()(GetChat(chat_id=chat_id, principal=LOCAL)),
        lambda: container.get_history()(GetHistory(chat_id=chat_id, principal=LOCAL)),
        lambda: container.get_messages_after()(
            GetMessagesAfter(chat_id=chat_id, after=0, principal=LOCAL)
        ),
        lambda: container.get_message()(GetMessage(chat_id=chat_id, message_id=1, principal=LOCAL)),
        lambda: container.list_members()(ListMembers(chat_id=chat_id, principal=LOCAL)),
    ]
    writes: list[Callable[[], object]] = [
        lambda: container.post_message()(PostMessage(chat_id=chat_id, text="x", principal=ANN)),
        lambda: container.post_message()(PostMessage(chat_id=chat_id, text="x", principal=LOCAL)),
        lambda: container.put_member()(
            PutMember(chat_id=chat_id, user_id="cy", role="member", principal=LOCAL)
        ),
        lambda: container.remove_member()(
            RemoveMember(chat_id=chat_id, user_id="bob", principal=user("bob"))
        ),
        lambda: container.issue_stream_ticket()(IssueStreamTicket(chat_id=chat_id, principal=ANN)),
        lambda: container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL)),
        # A member who may not delete it is told it is missing, not forbidden.
        lambda: container.delete_chat()(DeleteChat(chat_id=chat_id, principal=user("bob"))),
    ]
    for attempt in reads + writes:
        with pytest.raises(ChatNotFound):
            attempt()
    for principal in (ANN, user("bob"), LOCAL):
        listed = container.list_chats()(ListChats(principal=principal))
        assert chat_id not in [chat.id for chat in listed.chats]
    # Nothing the refused writes did stayed.
    assert count_rows(engine, "messages", chat_id=chat_id) == 3
    assert count_rows(engine, "chat_members", chat_id=chat_id) == 2


def test_a_deleted_chats_id_is_never_given_again(container: Container) -> None:
    chat_id = new_chat(container, messages=0)
    delete(container, chat_id)
    container.job_runner().run_until_idle()
    assert new_chat(container, messages=0) > chat_id


def test_a_keyed_post_retried_after_the_delete_is_a_404_not_a_replay(
    container: Container,
) -> None:
    chat_id = new_chat(container, messages=0)
    keyed = PostMessage(chat_id=chat_id, text="once", idempotency_key="k1", principal=ANN)
    container.post_message()(keyed)
    delete(container, chat_id)
    with pytest.raises(ChatNotFound):
        container.post_message()(keyed)
    container.job_runner().run_until_idle()
    assert_purged(container.write_engine(), chat_id)


def test_posts_racing_a_delete_land_before_it_or_get_404(container: Container) -> None:
    chat_id = new_chat(container, messages=0)
    outcomes: dict[int, list[str]] = {}
    landed_before_delete = threading.Semaphore(0)

    def poster(n: int) -> None:
        outcomes[n] = []
        for i in range(RACING_POSTS_AT_MOST):
            post = PostMessage(chat_id=chat_id, text=f"{n}.{i}", principal=LOCAL)
            try:
                container.post_message()(post)
            except ChatNotFound:
                outcomes[n].append("404")
                return
            outcomes[n].append("201")
            landed_before_delete.release()

    threads = [threading.Thread(target=poster, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):  # the delete lands among the posts, not before them
        landed_before_delete.acquire()
    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    for thread in threads:
        thread.join()

    engine = container.write_engine()
    with engine.connect() as connection:
        last_seq = connection.execute(
            text("SELECT last_seq FROM chats WHERE id = :id"), {"id": chat_id}
        ).scalar_one()
    landed = sum(outcome.count("201") for outcome in outcomes.values())
    # Every post that got its 201 is one the tombstone found in the chat, and none came after.
    assert landed == last_seq == count_rows(engine, "messages", chat_id=chat_id)
    for outcome in outcomes.values():
        assert outcome[-1] == "404"
        assert "404" not in outcome[:-1]
    container.job_runner().run_until_idle()
    assert_purged(engine, chat_id)


# --- the second step: the purge ---------------------------------------------------------------


def test_the_purge_goes_in_steps_each_committed_with_its_progress(container: Container) -> None:
    kept = new_chat(container, title="kept")
    chat_id = new_chat(container, messages=7)
    key = PostMessage(chat_id=chat_id, text="keyed", idempotency_key="k", principal=ANN)
    container.post_message()(key)  # seq 8, and its key
    delete(container, chat_id)
    engine = container.write_engine()
    settings = JobSettings(batch_size=3, idempotency_ttl=3600, purge_interval=3600)

    progress = []
    while purged_to(engine, chat_id) is not None:
        with engine.begin() as connection:
            step = run_step(connection, container.clock()(), settings)
        assert step is not None
        if step.chat_id == chat_id and not step.finished:
            progress.append(assert_whole_steps(engine, chat_id, last_seq=8))
    # Two steps of three messages; the last two, its one key and the chat's row in a third.
    assert progress == [3, 6]
    assert_purged(engine, chat_id)
    assert count_rows(engine, "messages", chat_id=kept) == 3
    assert container.get_chat()(GetChat(chat_id=kept, principal=ANN)).message_count == 3


@pytest.mark.postgres_only
def test_two_claims_never_take_the_same_job(container: Container) -> None:
    first, second = new_chat(container), new_chat(container)
    delete(container, first)
    delete(container, second)
    engine = container.write_engine()
    now = container.clock()()
    claim = text(
        "SELECT chat_id FROM jobs WHERE kind = 'purge_chat' AND run_after <= :now "
        "ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    settings = JobSettings(batch_size=1000, idempotency_ttl=3600, purge_interval=3600)
    with engine.connect() as holder:
        transaction = holder.begin()
        held = holder.execute(claim, {"now": now}).scalar_one()
        # Meanwhile another worker's steps take the other job, never the one held.
        with engine.begin() as connection:
            step = run_step(connection, now, settings)
        assert step is not None
        assert step.chat_id == ({first, second} - {held}).pop()
        with engine.begin() as connection:
            while (step := run_step(connection, now, settings)) is not None:
                assert step.chat_id != held
        transaction.rollback()
    container.job_runner().run_until_idle()
    assert_purged(engine, first)
    assert_purged(engine, second)


def test_the_periodic_purges_forget_what_expired_and_come_back_later(
    container: Container,
) -> None:
    engine = container.write_engine()
    chat_id = new_chat(container, messages=0)
    now = container.clock()()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, result, created_at) "
                "VALUES ('create_chat', 'old', 'f', NULL, :at), "
                "('create_chat', 'new', 'f', NULL, :now)"
            ),
            {"at": now - timedelta(days=2), "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO stream_tickets (ticket_hash, chat_id, principal_kind, principal_id, "
                "expires_at) VALUES ('h', :chat_id, 'user', 'ann', :at)"
            ),
            {"chat_id": chat_id, "at": now - timedelta(minutes=1)},
        )
    runner = container.job_runner()
    assert runner.run_until_idle() == 2  # one round of each periodic purge
    assert count_rows(engine, "idempotency_keys", key="old") == 0
    assert count_rows(engine, "idempotency_keys", key="new") == 1
    assert count_rows(engine, "stream_tickets") == 0
    # Their next rounds are IDEMPOTENCY_PURGE_INTERVAL away.
    assert runner.run_until_idle() == 0
    assert count_rows(engine, "jobs") == 2


# --- workers: killed, stopped, and the server's own thread ------------------------------------


@pytest.fixture
def worker_env(container: Container, database_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "HOST", "PORT"} and not key.startswith(("DB_", "JOB"))
    }
    env.update(DATABASE_URL=database_url, JOBS="worker", JOB_POLL_INTERVAL="0.1")
    return env


def start_worker(env: dict[str, str], tmp_path: Path, **settings: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CHATAPI), "worker"],
        env={**env, "WORKER_STATUS_FILE": str(tmp_path / "worker.json"), **settings},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_progress(engine: Engine, chat_id: int) -> int:
    deadline = time.monotonic() + PROGRESS_SECONDS
    while time.monotonic() < deadline:
        done = purged_to(engine, chat_id)
        if done:
            return done
        time.sleep(0.02)
    raise AssertionError("the worker made no progress")


@pytest.mark.postgres_only
def test_a_worker_killed_mid_purge_leaves_whole_steps_and_another_finishes(
    container: Container, worker_env: dict[str, str], tmp_path: Path
) -> None:
    engine = container.write_engine()
    chat_id = deleted_chat_of(container, 5000)

    worker = start_worker(worker_env, tmp_path, JOB_BATCH_SIZE="100", JOB_BATCH_PAUSE="0.01")
    wait_for_progress(engine, chat_id)
    worker.kill()  # SIGKILL: whatever step was in flight rolls back with its connection
    worker.communicate(timeout=WORKER_STOP_SECONDS)
    time.sleep(0.2)  # PostgreSQL notices the lost connection and ends its transaction
    done = assert_whole_steps(engine, chat_id, last_seq=5000)
    assert 0 < done < 5000

    successor = start_worker(worker_env, tmp_path, JOB_BATCH_SIZE="1000")
    deadline = time.monotonic() + PROGRESS_SECONDS
    while purged_to(engine, chat_id) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    successor.send_signal(signal.SIGTERM)
    _, log = successor.communicate(timeout=WORKER_STOP_SECONDS)
    assert successor.returncode == 0, log
    assert f"chat {chat_id} purged" in log
    assert_purged(engine, chat_id)


@pytest.mark.postgres_only
def test_sigterm_lets_the_step_in_flight_commit_then_stops(
    container: Container, worker_env: dict[str, str], tmp_path: Path
) -> None:
    engine = container.write_engine()
    chat_id = deleted_chat_of(container, 20_000)

    worker = start_worker(worker_env, tmp_path, JOB_BATCH_SIZE="500", JOB_BATCH_PAUSE="0.05")
    wait_for_progress(engine, chat_id)
    worker.send_signal(signal.SIGTERM)
    _, log = worker.communicate(timeout=WORKER_STOP_SECONDS)

    assert worker.returncode == 0, log
    assert "Traceback" not in log
    assert "stopping after the step in flight (SIGTERM)" in log
    done = assert_whole_steps(engine, chat_id, last_seq=20_000)
    assert 0 < done < 20_000  # it stopped mid-purge, the job waiting for the next worker
    # Its status file says what it did, for `chatapi worker --check`.
    assert (tmp_path / "worker.json").exists()


def test_the_server_purges_in_a_thread_of_its_own_with_jobs_in_process(
    database_url: str, container: Container
) -> None:
    engine = container.write_engine()
    chat_id = new_chat(container)
    server = container_for(database_url, jobs="in-process", job_poll_interval=0.05)
    with served(server) as base_url:
        assert httpx.delete(f"{base_url}/chats/{chat_id}").status_code == 204
        assert httpx.get(f"{base_url}/chats/{chat_id}").status_code == 404
        deadline = time.monotonic() + PROGRESS_SECONDS
        while count_rows(engine, "chats", id=chat_id) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert_purged(engine, chat_id)


# --- the migration -----------------------------------------------------------------------------


def test_a_downgrade_finishes_the_purges_still_waiting(
    backend: str, databases: EmptyDatabases
) -> None:
    url = databases.new(backend)
    migrations.upgrade(url)
    container = container_for(url)
    try:
        doomed, kept = new_chat(container), new_chat(container, title="kept")
        delete(container, doomed)
        migrations.downgrade(url, "0007")
        engine = container.write_engine()
        for table, column in (
            ("messages", "chat_id"),
            ("chat_members", "chat_id"),
            ("chats", "id"),
        ):
            assert count_rows(engine, table, **{column: doomed}) == 0, table
        assert count_rows(engine, "messages", chat_id=kept) == 3
        migrations.upgrade(url)
        assert container.get_chat()(GetChat(chat_id=kept, principal=ANN)).message_count == 3
    finally:
        container.shutdown_resources()
