"""A replica that stops: reads go on from the primary, never a 500; back, it is used again."""

import time
from collections.abc import Iterator

import pytest
from dependency_injector import providers
from sqlalchemy import text

from devtools.postgres_cluster import PostgresCluster, started_standby
from infrastructure import migrations
from infrastructure.read_targets import ReplicaSkip
from tests.conftest import EmptyDatabases
from tests.support.replicas import caught_up, on
from tests.support.servers import container_for, new_client, served

SKIP_SECONDS = 0.5
IN_RECOVERY = text("SELECT pg_is_in_recovery()")


@pytest.fixture
def own_standby(postgres_cluster: PostgresCluster | None) -> Iterator[PostgresCluster]:
    """A standby of this test's own: the test stops it."""
    if postgres_cluster is None:
        pytest.skip("a standby needs the throwaway cluster started by the suite")
    with started_standby(postgres_cluster) as standby:
        yield standby


def test_reads_survive_the_replica_stopping_and_use_it_again_once_back(
    databases: EmptyDatabases, own_standby: PostgresCluster
) -> None:
    url = databases.new("postgresql")
    migrations.upgrade(url)
    caught_up(url, own_standby)
    container = container_for(url, read_database_url=on(own_standby, url), access_log=False)
    container.replica_skip.override(providers.Singleton(ReplicaSkip, SKIP_SECONDS))

    def served_by_replica() -> bool:
        with container.read_targets().connect() as connection:
            return bool(connection.execute(IN_RECOVERY).scalar_one())

    with served(container) as base_url, new_client(base_url) as client:
        created = client.post("/chats/", json={"title": "t"})
        token = {"Consistency-Token": created.headers["Consistency-Token"]}
        path = f"/chats/{created.json()['id']}"
        assert client.get(path, headers=token).status_code == 200
        assert served_by_replica()

        own_standby.stop()
        statuses = [client.get(path, headers=token).status_code for _ in range(20)]
        statuses += [client.get("/chats/").status_code for _ in range(20)]
        assert set(statuses) <= {200, 503}, statuses  # never a 500
        assert statuses[-10:] == [200] * 10, statuses  # the primary serves them
        assert not served_by_replica()

        own_standby.start()
        own_standby.wait_streaming()
        deadline = time.monotonic() + SKIP_SECONDS + 10
        while not served_by_replica():
            assert time.monotonic() < deadline, "the replica is not used again"
            time.sleep(0.1)
        assert client.get(path, headers=token).status_code == 200


def test_ready_reports_the_replica_and_stays_ready_while_it_is_down(
    databases: EmptyDatabases, own_standby: PostgresCluster
) -> None:
    url = databases.new("postgresql")
    migrations.upgrade(url)
    caught_up(url, own_standby)
    container = container_for(url, read_database_url=on(own_standby, url), access_log=False)
    with served(container) as base_url, new_client(base_url) as client:
        up = client.get("/health/ready")
        assert up.status_code == 200, up.text
        (target,) = up.json()["read_targets"]
        assert target["up"] is True
        assert 0 <= target["replay_lag_seconds"] < 5

        own_standby.stop()
        down = client.get("/health/ready")
        assert down.status_code == 200, down.text
        assert down.json() == {
            "status": "ready",
            "read_targets": [{"target": "replica", "up": False}],
        }


def test_a_service_started_while_its_replica_is_down_serves_from_the_primary(
    databases: EmptyDatabases, own_standby: PostgresCluster
) -> None:
    url = databases.new("postgresql")
    migrations.upgrade(url)
    caught_up(url, own_standby)
    own_standby.stop()
    container = container_for(url, read_database_url=on(own_standby, url), access_log=False)
    with served(container) as base_url, new_client(base_url) as client:
        created = client.post("/chats/", json={"title": "t"})
        assert created.status_code == 201, created.text
        read = client.get(f"/chats/{created.json()['id']}")
        assert read.status_code == 200, read.text
        assert client.get("/health/ready").status_code == 200
