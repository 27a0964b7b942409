"""A sick PostgreSQL: every failure that is not the client's fault is a JSON 503 with
Retry-After, never a 500; a command that PostgreSQL rolled back over a conflict (a deadlock,
a serialization failure) runs again, whole, and succeeds.

Each test has a database of its own: they change its settings and end its sessions.
"""

import concurrent.futures
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from commands.create_chat import CreateChat
from commands.post_message import PostMessage
from domain.principals import LOCAL
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.failures import ATTEMPTS
from infrastructure.unit_of_work import UnitOfWork
from tests.conftest import EmptyDatabases
from tests.support.database import OTHER_SESSIONS, count_rows, inspector
from tests.support.servers import client_of, container_for

RETRY_AFTER = 9
WAIT_SECONDS = 10.0  # far above what any wait here takes
# Another session of the database waiting for a lock: the service's, behind the test's.
LOCK_WAITER = f"SELECT pid {OTHER_SESSIONS} AND wait_event_type = 'Lock'"


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["Retry-After"] == str(RETRY_AFTER), response.headers
    assert response.headers["content-type"] == "application/json", response.headers
    assert response.json() == {"detail": "database unavailable"}, response.text


def created(response: httpx.Response) -> Any:
    assert response.status_code == 201, (response.status_code, response.text)
    return response.json()


@pytest.fixture
def postgres_url(databases: EmptyDatabases) -> str:
    url = databases.new("postgresql")
    migrations.upgrade(url)
    return url


@pytest.fixture
def admin(postgres_url: str) -> Iterator[Engine]:
    with inspector(postgres_url) as engine:
        yield engine


@pytest.fixture
def server_admin(postgres_server: str) -> Iterator[Engine]:
    """On the maintenance database: its sessions stay writable whatever the test's says."""
    with inspector(postgres_server) as engine:
        yield engine


@pytest.fixture
def container(postgres_url: str) -> Container:
    return container_for(postgres_url, retry_after=RETRY_AFTER)


@pytest.fixture
def client(container: Container) -> Iterator[httpx.Client]:
    with client_of(container) as http:
        yield http


def database_name(url: str) -> str:
    return str(make_url(url).database)


def wait_for_lock_waiter(admin: Engine, besides: Connection) -> int:
    """The pid of the service's session once it waits for a lock the test holds."""
    own = besides.execute(text("SELECT pg_backend_pid()")).scalar_one()
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        with admin.connect() as connection:
            pids = [pid for pid in connection.execute(text(LOCK_WAITER)).scalars() if pid != own]
        if pids:
            return int(pids[0])
        time.sleep(0.01)
    pytest.fail("the service never waited for the test's lock")


# --- a read-only database: what a failover onto a standby looks like ---------------------------


def test_a_read_only_database_refuses_writes_with_503_and_serves_reads(
    client: httpx.Client,
    container: Container,
    admin: Engine,
    server_admin: Engine,
    postgres_url: str,
) -> None:
    chat = created(client.post("/chats/", json={"title": "before the failover"}))["id"]
    name = database_name(postgres_url)
    with server_admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    container.write_engine().dispose()  # new sessions take the setting

    assert_unavailable(client.post("/chats/", json={"title": "refused"}))
    assert_unavailable(client.post(f"/chats/{chat}/messages/", json={"text": "refused"}))
    idempotent = {"Idempotency-Key": "read-only-1"}
    assert_unavailable(client.post("/chats/", json={"title": "refused"}, headers=idempotent))
    assert_unavailable(client.delete(f"/chats/{chat}"))
    shown = client.get(f"/chats/{chat}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["messages"] == []

    with server_admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
    # No dispose this time: the service dropped the read-only sessions by itself.
    created(client.post(f"/chats/{chat}/messages/", json={"text": "after"}))
    created(client.post("/chats/", json={"title": "after"}, headers=idempotent))
    assert count_rows(admin, "chats") == 2


# --- the server ends the service's session in the middle of its transaction --------------------


def test_a_session_ended_mid_transaction_is_503_then_served_again(
    client: httpx.Client, admin: Engine
) -> None:
    chat = created(client.post("/chats/", json={"title": "terminated"}))["id"]

    with admin.connect() as holder, concurrent.futures.ThreadPoolExecutor(1) as pool:
        # The test locks the chat: the service's post begins its transaction, then waits.
        holder.execute(text("BEGIN"))
        holder.execute(text("SELECT id FROM chats WHERE id = :id FOR UPDATE"), {"id": chat})
        post = pool.submit(client.post, f"/chats/{chat}/messages/", json={"text": "cut"})
        service = wait_for_lock_waiter(admin, holder)
        holder.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": service})
        assert_unavailable(post.result(timeout=WAIT_SECONDS))
        holder.execute(text("ROLLBACK"))

    assert created(client.post(f"/chats/{chat}/messages/", json={"text": "again"}))["seq"] == 1
    assert count_rows(admin, "messages") == 1


# --- a real deadlock: PostgreSQL rolls the service's post back, and it runs again --------------


def test_a_post_that_deadlocks_runs_again_and_succeeds(
    client: httpx.Client, admin: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatapi")
    chat = created(client.post("/chats/", json={"title": "deadlock"}))["id"]

    with admin.connect() as other, concurrent.futures.ThreadPoolExecutor(1) as pool:
        # The post locks the chat, then its read model's row; the test holds the row first,
        # then asks for the chat. Waiting first, the service detects the deadlock first (after
        # deadlock_timeout, 1 s by default) and is the one rolled back.
        other.execute(text("BEGIN"))
        other.execute(
            text("UPDATE chat_views SET message_count = message_count WHERE chat_id = :id"),
            {"id": chat},
        )
        post = pool.submit(client.post, f"/chats/{chat}/messages/", json={"text": "retried"})
        wait_for_lock_waiter(admin, other)
        other.execute(text("UPDATE chats SET last_seq = last_seq WHERE id = :id"), {"id": chat})
        other.execute(text("ROLLBACK"))
        posted = created(post.result(timeout=WAIT_SECONDS))

    assert posted["seq"] == 1
    assert count_rows(admin, "messages") == 1
    shown = client.get(f"/chats/{chat}").json()
    assert shown["message_count"] == 1
    assert [m["text"] for m in shown["messages"]] == ["retried"]
    assert "PostMessage ran into deadlock_detected, running it again" in caplog.messages


# --- conflicts raised by PostgreSQL on demand, at commit ----------------------------------------


class ConflictingUnitOfWork(UnitOfWork):
    """Makes PostgreSQL raise the next of `failures` (SQLSTATEs) at each commit, then commits."""

    def __init__(self, failures: list[str], **dependencies: Any) -> None:
        super().__init__(**dependencies)
        self._failures = failures

    def commit(self) -> None:
        if self._failures:
            code = self._failures.pop(0)
            self.connection.exec_driver_sql(
                f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{code}'; END $$"
            )
        super().commit()


def failing_commits(container: Container, failures: list[str]) -> providers.Factory[UnitOfWork]:
    return providers.Factory(
        ConflictingUnitOfWork,
        failures=failures,
        engine=container.write_engine,
        clock=container.clock,
        idempotency_ttl=container.settings.provided.idempotency_ttl,
        publisher=container.hint_publisher,
    )


@pytest.mark.parametrize("code", ["40P01", "40001"], ids=["deadlock", "serialization"])
def test_a_command_runs_again_after_conflicts(
    client: httpx.Client, container: Container, admin: Engine, code: str
) -> None:
    chat = created(client.post("/chats/", json={"title": "conflicts"}))["id"]
    failures = [code] * (ATTEMPTS - 1)

    # With a key, the post runs in a unit of work, which failing_commits overrides (one
    # without runs on the loop's connections: test_loop_database.py has its conflicts).
    key = {"Idempotency-Key": "conflicts-1"}
    with container.unit_of_work.override(failing_commits(container, failures)):
        posted = created(
            client.post(f"/chats/{chat}/messages/", json={"text": "at last"}, headers=key)
        )
        assert failures == []
        failures.extend([code] * (ATTEMPTS - 1))
        again = created(client.post("/chats/", json={"title": "at last"}))
        assert failures == []

    assert posted["seq"] == 1
    assert count_rows(admin, "messages") == 1
    assert count_rows(admin, "chats", id=again["id"]) == 1


def test_too_many_conflicts_are_503_and_change_nothing(
    client: httpx.Client, container: Container, admin: Engine
) -> None:
    chat = created(client.post("/chats/", json={"title": "conflicts"}))["id"]
    failures = ["40P01"] * (ATTEMPTS + 1)
    key = {"Idempotency-Key": "conflicted-1"}

    with container.unit_of_work.override(failing_commits(container, failures)):
        response = client.post(f"/chats/{chat}/messages/", json={"text": "lost"}, headers=key)
    assert_unavailable(response)
    assert failures == ["40P01"]  # tried exactly ATTEMPTS times

    assert count_rows(admin, "messages") == 0
    assert count_rows(admin, "idempotency_keys") == 0  # the key is not used up
    retried = created(client.post(f"/chats/{chat}/messages/", json={"text": "lost"}, headers=key))
    assert retried["seq"] == 1


def test_other_failures_are_not_run_again(
    client: httpx.Client, container: Container, admin: Engine
) -> None:
    chat = created(client.post("/chats/", json={"title": "read-only"}))["id"]
    failures = ["25006", "25006"]

    key = {"Idempotency-Key": "read-only-2"}  # in a unit of work: see above
    with container.unit_of_work.override(failing_commits(container, failures)):
        assert_unavailable(
            client.post(f"/chats/{chat}/messages/", json={"text": "no"}, headers=key)
        )
    assert failures == ["25006"]
    assert count_rows(admin, "messages") == 0


def test_scripts_get_the_retries_too(container: Container, admin: Engine) -> None:
    """The CLI and scripts call the container's handlers: the same retries apply."""
    failures = ["40P01"] * (ATTEMPTS - 1)
    try:
        chat = container.create_chat()(CreateChat(title="scripted", principal=LOCAL)).chat_id
        with container.unit_of_work.override(failing_commits(container, failures)):
            posted = container.post_message()(
                PostMessage(chat_id=chat, text="from a script", principal=LOCAL)
            )
    finally:
        container.shutdown_resources()

    assert failures == []
    assert posted.seq == 1
    assert count_rows(admin, "messages") == 1
