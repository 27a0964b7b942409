"""Reads on a hot standby keep read-your-writes through the Consistency-Token.

The standby's apply delay holds every write back for seconds: a read without the token is
stale (which shows these tests can fail), a read with it shows the write all the same.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from commands.create_chat import CreateChat
from devtools.postgres_cluster import PostgresCluster
from domain.principals import LOCAL
from infrastructure import migrations
from infrastructure.container import Container
from queries.get_chat import GetChat
from tests.conftest import EmptyDatabases
from tests.support.replicas import caught_up, on, port_serving
from tests.support.servers import container_for, new_client, served
from tests.support.sse import open_events
from tests.support.threads import run_in_threads

APPLY_DELAY_MS = 3000
REPLICA_WAIT = 0.5


def primary_port(container: Container) -> int | None:
    return make_url(container.settings().database_url).port


@contextmanager
def reading_from(
    databases: EmptyDatabases, *standbys: PostgresCluster, **settings: Any
) -> Iterator[Container]:
    """A container over a new database whose reads go to `standbys`, in turn."""
    url = databases.new("postgresql")
    migrations.upgrade(url)
    for standby in standbys:
        caught_up(url, standby)
    replicas = ",".join(on(standby, url) for standby in standbys)
    container = container_for(
        url, read_database_url=replicas, replica_wait=REPLICA_WAIT, **settings
    )
    try:
        yield container
    finally:
        container.shutdown_resources()


@contextmanager
def delayed(standby: PostgresCluster) -> Iterator[PostgresCluster]:
    standby.set_apply_delay(APPLY_DELAY_MS)
    try:
        yield standby
    finally:
        standby.set_apply_delay(0)


@pytest.fixture
def lagging(databases: EmptyDatabases, delayed_standby: PostgresCluster) -> Iterator[Container]:
    """Reads on a standby that applies each write 3 s after the primary committed it."""
    with (
        reading_from(databases, delayed_standby, access_log=False) as container,
        delayed(delayed_standby),
    ):
        yield container


@pytest.fixture
def lagging_client(lagging: Container) -> Iterator[httpx.Client]:
    with served(lagging) as base_url, new_client(base_url) as client:
        yield client


def test_a_read_with_the_token_shows_the_write_a_read_without_it_does_not(
    lagging_client: httpx.Client,
) -> None:
    created = lagging_client.post("/chats/", json={"title": "t"})
    chat_id = created.json()["id"]
    posted = lagging_client.post(f"/chats/{chat_id}/messages/", json={"text": "hello"})
    assert (created.status_code, posted.status_code) == (201, 201)
    token = posted.headers["Consistency-Token"]

    stale = lagging_client.get(f"/chats/{chat_id}")
    assert stale.status_code == 404  # the standby has not applied the chat yet

    fresh = lagging_client.get(f"/chats/{chat_id}", headers={"Consistency-Token": token})
    assert fresh.status_code == 200, fresh.text
    assert [message["text"] for message in fresh.json()["messages"]] == ["hello"]
    page = lagging_client.get(
        f"/chats/{chat_id}/messages/?after=0", headers={"Consistency-Token": token}
    )
    assert [message["text"] for message in page.json()["messages"]] == ["hello"]


def test_a_deleted_chat_is_gone_for_a_read_with_the_delete_token(
    lagging_client: httpx.Client,
) -> None:
    chat_id = lagging_client.post("/chats/", json={"title": "t"}).json()["id"]
    deadline = time.monotonic() + APPLY_DELAY_MS / 1000 + 5
    while lagging_client.get(f"/chats/{chat_id}").status_code != 200:  # the standby has it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    deleted = lagging_client.delete(f"/chats/{chat_id}")
    assert deleted.status_code == 204
    assert lagging_client.get(f"/chats/{chat_id}").status_code == 200  # stale
    token = deleted.headers["Consistency-Token"]
    gone = lagging_client.get(f"/chats/{chat_id}", headers={"Consistency-Token": token})
    assert gone.status_code == 404


def test_a_malformed_token_is_a_422_with_a_replica(lagging_client: httpx.Client) -> None:
    read = lagging_client.get("/chats/1", headers={"Consistency-Token": "not-a-token"})
    assert read.status_code == 422


def test_the_read_waits_its_bound_then_runs_on_the_primary(lagging: Container) -> None:
    chat = lagging.create_chat()(CreateChat(title="t", principal=LOCAL))
    reads = lagging.read_targets()
    assert port_serving(reads, chat.consistency_token) == primary_port(lagging)
    # Scripts get the same through the container.
    shown = lagging.get_chat()(
        GetChat(chat.chat_id, consistency_token=chat.consistency_token, principal=LOCAL)
    )
    assert shown.title == "t"


def test_a_standby_that_has_the_write_serves_the_read(
    databases: EmptyDatabases, standby: PostgresCluster
) -> None:
    with reading_from(databases, standby) as container:
        chat = container.create_chat()(CreateChat(title="t", principal=LOCAL))
        assert port_serving(container.read_targets(), chat.consistency_token) == standby.port
        shown = container.get_chat()(
            GetChat(chat.chat_id, consistency_token=chat.consistency_token, principal=LOCAL)
        )
        assert shown.title == "t"


def test_event_streams_read_on_the_primary(lagging_client: httpx.Client) -> None:
    """A stream opened on a chat the standby has not applied yet, resumed from its start:
    a stream has no token to bring, so it reads where its hints come from."""
    chat_id = lagging_client.post("/chats/", json={"title": "t"}).json()["id"]
    posted = lagging_client.post(f"/chats/{chat_id}/messages/", json={"text": "live"})
    started = time.monotonic()
    with open_events(lagging_client, f"/chats/{chat_id}/events", after=0) as events:
        assert events.next().json() == posted.json()
    assert time.monotonic() - started < APPLY_DELAY_MS / 1000


def test_with_two_standbys_a_read_with_a_token_runs_on_the_one_that_has_the_write(
    databases: EmptyDatabases, standby: PostgresCluster, delayed_standby: PostgresCluster
) -> None:
    """The replay check is made on the connection the read then runs on: whichever
    standby's turn it is, a read with the token never runs on the delayed one."""
    with (
        reading_from(databases, delayed_standby, standby) as container,
        delayed(delayed_standby),
    ):
        reads = container.read_targets()
        chat = container.create_chat()(CreateChat(title="t", principal=LOCAL))
        token = chat.consistency_token
        with_token = [port_serving(reads, token) for _ in range(20)]
        assert set(with_token) == {standby.port}
        shown = [
            container.get_chat()(
                GetChat(chat.chat_id, consistency_token=token, principal=LOCAL)
            ).title
            for _ in range(10)
        ]
        assert shown == ["t"] * 10
        # Without a token, reads take the standbys in turn: the delayed one serves half.
        without = [port_serving(reads) for _ in range(20)]
        assert without.count(delayed_standby.port) == without.count(standby.port) == 10


def test_a_standby_too_far_behind_is_left_aside(
    databases: EmptyDatabases, standby: PostgresCluster, delayed_standby: PostgresCluster
) -> None:
    with (
        reading_from(databases, delayed_standby, standby, replica_max_lag=1.0) as container,
        delayed(delayed_standby),
    ):
        reads = container.read_targets()
        assert {port_serving(reads) for _ in range(4)} == {delayed_standby.port, standby.port}
        container.create_chat()(CreateChat(title="t", principal=LOCAL))
        time.sleep(1.5)  # past REPLICA_MAX_LAG, and past the next look at its lag
        assert {port_serving(reads) for _ in range(10)} == {standby.port}


def waits_of(container: Container) -> list[str]:
    """Records every token a read waits for a replica to replay (the replicas' own record
    would need a clock: this asks which reads waited at all)."""
    replicas = container.replicas()
    waited: list[str] = []
    wait = replicas._first_to_replay

    def recording(behind: Any, token: str, seconds: float) -> Any:
        waited.append(token)
        return wait(behind, token, seconds)

    setattr(replicas, "_first_to_replay", recording)  # noqa: B010  (a method of the instance)
    return waited


def test_a_made_up_token_ahead_of_the_primary_is_read_there_without_a_wait(
    lagging: Container,
) -> None:
    """FFFFFFFF/FFFFFFFF is a position no replica will reach: it would hold a handler thread
    REPLICA_WAIT per read. The primary has not written it, so the read goes there at once,
    and is right."""
    waited = waits_of(lagging)
    chat = lagging.create_chat()(CreateChat(title="t", principal=LOCAL))
    forged = "FFFFFFFF/FFFFFFFF"

    assert port_serving(lagging.read_targets(), forged) == primary_port(lagging)
    shown = lagging.get_chat()(GetChat(chat.chat_id, consistency_token=forged, principal=LOCAL))

    assert shown.title == "t"
    assert waited == []
    # A real token the standby has not replayed is still waited for.
    assert port_serving(lagging.read_targets(), chat.consistency_token) == primary_port(lagging)
    assert waited == [chat.consistency_token]


def test_at_most_replica_waits_reads_wait_at_once(
    databases: EmptyDatabases, delayed_standby: PostgresCluster
) -> None:
    """With REPLICA_WAITS=1, of four reads bringing a token the delayed standby has not
    replayed, one waits (and ends on the primary after REPLICA_WAIT); the other three go to
    the primary at once."""
    with (
        reading_from(databases, delayed_standby, replica_waits=1, access_log=False) as container,
        delayed(delayed_standby),
    ):
        waited = waits_of(container)
        chat = container.create_chat()(CreateChat(title="t", principal=LOCAL))
        token = chat.consistency_token
        assert token is not None
        reads = container.read_targets()
        ports: list[int] = []
        run_in_threads([lambda: ports.append(port_serving(reads, token))] * 4)
        assert ports == [primary_port(container)] * 4
        assert waited == [token]
