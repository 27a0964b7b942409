"""Replicas that stop: reads go on from the other one or the primary, never an error, and
a replica back up is used again."""

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from dependency_injector import providers

from devtools.postgres_cluster import PostgresCluster, started_standby
from infrastructure import database, migrations
from infrastructure.container import Container
from tests.conftest import EmptyDatabases
from tests.support.replicas import caught_up, on, port_serving
from tests.support.servers import container_for, new_client, served

SET_ASIDE_SECONDS = 0.5
READERS = 4


@pytest.fixture
def own_standby(postgres_cluster: PostgresCluster | None) -> Iterator[PostgresCluster]:
    """A standby of this test's own: the test stops it."""
    if postgres_cluster is None:
        pytest.skip("a standby needs the throwaway cluster started by the suite")
    with started_standby(postgres_cluster) as standby:
        yield standby


def reading_from(databases: EmptyDatabases, *standbys: PostgresCluster) -> Container:
    url = databases.new("postgresql")
    migrations.upgrade(url)
    for standby in standbys:
        caught_up(url, standby)
    replicas = ",".join(on(standby, url) for standby in standbys)
    container = container_for(url, read_database_url=replicas, access_log=False)
    container.replicas.override(
        providers.Resource(
            database.replicas, container.settings, set_aside_seconds=SET_ASIDE_SECONDS
        )
    )
    return container


class Readers:
    """Threads reading a chat over HTTP, half of the reads with a token, until stopped."""

    def __init__(self, base_url: str, path: str, token: str) -> None:
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(base_url, path, token))
            for _ in range(READERS)
        ]

    def _read(self, base_url: str, path: str, token: str) -> None:
        with new_client(base_url) as client:
            while not self._stop.is_set():
                for headers in ({}, {"Consistency-Token": token}):
                    status = client.get(path, headers=headers).status_code
                    with self._lock:
                        self.statuses[status] += 1

    @contextmanager
    def running(self) -> Iterator["Readers"]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=30)


def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def test_reads_under_load_survive_a_replica_stopping_and_use_it_again_once_back(
    databases: EmptyDatabases, own_standby: PostgresCluster, standby: PostgresCluster
) -> None:
    container = reading_from(databases, own_standby, standby)
    reads = container.read_targets()
    with served(container) as base_url, new_client(base_url) as client:
        created = client.post("/chats/", json={"title": "t"})
        token = created.headers["Consistency-Token"]
        path = f"/chats/{created.json()['id']}"
        for server in (own_standby, standby):  # reads without the token find the chat too
            caught_up(container.settings().database_url, server)
        with Readers(base_url, path, token).running() as readers:
            wait_until(lambda: readers.statuses.total() > 50, 10)
            own_standby.stop()
            down_since = readers.statuses.total()
            # Reads in turn go to the other standby while this one is down.
            served_by = {port_serving(reads) for _ in range(10)}
            assert served_by == {standby.port}
            wait_until(lambda: readers.statuses.total() > down_since + 200, 20)
            own_standby.start()
            own_standby.wait_streaming()
            wait_until(
                lambda: own_standby.port in {port_serving(reads) for _ in range(4)},
                SET_ASIDE_SECONDS + 10,
            )
        # Every read answered, and right: not one error while a replica went away.
        assert set(readers.statuses) == {200}, readers.statuses
        assert readers.statuses[200] > down_since + 200


def test_with_its_only_replica_down_reads_go_to_the_primary(
    databases: EmptyDatabases, own_standby: PostgresCluster
) -> None:
    container = reading_from(databases, own_standby)
    primary = container.read_engine().url.port
    with served(container) as base_url, new_client(base_url) as client:
        created = client.post("/chats/", json={"title": "t"})
        token = {"Consistency-Token": created.headers["Consistency-Token"]}
        path = f"/chats/{created.json()['id']}"
        assert client.get(path, headers=token).status_code == 200
        assert port_serving(container.read_targets()) == own_standby.port
        own_standby.stop()
        statuses = [client.get(path, headers=token).status_code for _ in range(20)]
        statuses += [client.get("/chats/").status_code for _ in range(20)]
        assert statuses == [200] * 40
        assert port_serving(container.read_targets()) == primary


def test_ready_reports_each_replica_and_stays_ready_while_one_is_down(
    databases: EmptyDatabases, own_standby: PostgresCluster, standby: PostgresCluster
) -> None:
    container = reading_from(databases, own_standby, standby)
    with served(container) as base_url, new_client(base_url) as client:
        up = client.get("/health/ready")
        assert up.status_code == 200, up.text
        targets = up.json()["read_targets"]
        assert [t["target"].split("/")[0] for t in targets] == [
            f"127.0.0.1:{own_standby.port}",
            f"127.0.0.1:{standby.port}",
        ]
        assert all(t["up"] and 0 <= t["replay_lag_seconds"] < 5 for t in targets)

        own_standby.stop()
        down = client.get("/health/ready")
        assert down.status_code == 200, down.text
        first, second = down.json()["read_targets"]
        assert (first["up"], "replay_lag_seconds" in first, second["up"]) == (False, False, True)


def test_a_service_started_while_its_replica_is_down_serves_from_the_primary(
    databases: EmptyDatabases, own_standby: PostgresCluster
) -> None:
    container = reading_from(databases, own_standby)
    own_standby.stop()
    with served(container) as base_url, new_client(base_url) as client:
        created = client.post("/chats/", json={"title": "t"})
        assert created.status_code == 201, created.text
        read = client.get(f"/chats/{created.json()['id']}")
        assert read.status_code == 200, read.text
        assert client.get("/health/ready").status_code == 200
