"""Pooled connections the server closed while the service was idle cost the clients nothing.

After PostgreSQL restarts (or ends the service's sessions), every connection in the pools is
dead although the database is back. The first requests must not be the ones to find out:
the first GET and the first POST succeed, and so does a burst that checks out every pooled
connection at once.
"""

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from devtools.postgres_cluster import PostgresCluster
from tests.reliability.load import create_chat, database_name, server_connections
from tests.support.database import inspector, terminate_other_connections
from tests.support.servers import container_for, new_client, served
from tests.support.threads import run_in_threads

WORKERS = 8  # concurrent clients while warming: each pool ends up holding several connections
ROUNDS = 5
SETTLE_SECONDS = 1.0  # the "wait a second" after the database is back


@pytest.fixture(scope="module")
def base_url(own_database: str) -> Iterator[str]:
    with served(container_for(own_database, access_log=False)) as url:
        yield url


@pytest.fixture(scope="module")
def admin(own_database: str) -> Iterator[Engine]:
    with inspector(own_database) as engine:
        yield engine


def warm(base_url: str, chat: int) -> None:
    """Concurrent reads and writes, so both pools keep several connections open."""

    def client() -> None:
        with new_client(base_url) as http:
            for _ in range(ROUNDS):
                assert http.get(f"/chats/{chat}").status_code == 200
                posted = http.post(f"/chats/{chat}/messages/", json={"text": "warm"})
                assert posted.status_code == 201, posted.text

    run_in_threads([client] * WORKERS)


def assert_first_requests_succeed(http: httpx.Client, chat: int) -> None:
    shown = http.get(f"/chats/{chat}")
    assert shown.status_code == 200, shown.text
    posted = http.post(f"/chats/{chat}/messages/", json={"text": "first after"})
    assert posted.status_code == 201, posted.text
    created = http.post("/chats/", json={"title": "first after"})
    assert created.status_code == 201, created.text
    listed = http.get("/chats/")
    assert listed.status_code == 200, listed.text
    deleted = http.delete(f"/chats/{created.json()['id']}")
    assert deleted.status_code == 204, deleted.text


def assert_a_burst_succeeds(base_url: str, chat: int) -> None:
    """Every pooled connection is checked out at once: none of them may be a stale one."""
    statuses: list[int] = []

    def client() -> None:
        with new_client(base_url) as http:
            statuses.append(http.get(f"/chats/{chat}").status_code)
            statuses.append(http.post(f"/chats/{chat}/messages/", json={"text": "b"}).status_code)

    run_in_threads([client] * WORKERS)
    assert sorted(statuses) == [200] * WORKERS + [201] * WORKERS, statuses


def test_the_first_requests_after_a_restart_succeed(
    own_cluster: PostgresCluster, own_database: str, base_url: str, admin: Engine
) -> None:
    chat = create_chat(base_url, "restart while idle")
    warm(base_url, chat)
    assert server_connections(admin, database_name(own_database)) >= 4

    own_cluster.stop()
    own_cluster.start()  # same port; returns once pg_isready answers
    time.sleep(SETTLE_SECONDS)

    with new_client(base_url) as http:
        assert_first_requests_succeed(http, chat)
    assert_a_burst_succeeds(base_url, chat)


def test_the_first_requests_after_sessions_are_ended_succeed(
    own_database: str, base_url: str, admin: Engine
) -> None:
    chat = create_chat(base_url, "sessions ended while idle")
    warm(base_url, chat)
    ended = terminate_other_connections(admin)
    assert ended >= 4
    time.sleep(SETTLE_SECONDS)

    with new_client(base_url) as http:
        assert_first_requests_succeed(http, chat)
    assert_a_burst_succeeds(base_url, chat)
