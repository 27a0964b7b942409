"""The probes: liveness needs nothing, readiness needs a reachable database at head; where the
replicas are is told to services only."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from devtools.ports import free_port
from devtools.postgres_cluster import PostgresCluster
from infrastructure import migrations
from infrastructure.container import Container
from tests.api.helpers import assert_detail_error
from tests.conftest import EmptyDatabases
from tests.support.replicas import caught_up, on
from tests.support.servers import client_of, container_for


def test_live(client: httpx.Client) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "alive"}


def test_ready_on_a_migrated_database(client: httpx.Client) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    # With CHATAPI_TEST_READS_ON_STANDBY=1, the standby the reads go to is listed too.
    targets = body.pop("read_targets", [])
    assert body == {"status": "ready"}
    assert all(target["up"] for target in targets)


@pytest.mark.parametrize("path", ["/health/live/", "/health/ready/"])
def test_probes_answer_with_a_trailing_slash_too(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 200


class Unmigrated:
    """The app served over an empty database, which a test may migrate."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url
        self.client = client


@pytest.fixture
def unmigrated(backend: str, databases: EmptyDatabases) -> Iterator[Unmigrated]:
    url = databases.new(backend)
    with client_of(container_for(url, retry_after=3)) as http:
        yield Unmigrated(url, http)


def test_not_ready_until_migrated_then_ready_without_a_restart(unmigrated: Unmigrated) -> None:
    response = unmigrated.client.get("/health/ready")
    detail = assert_detail_error(response, 503)
    assert "migration" in detail
    assert response.headers["retry-after"] == "3"
    assert unmigrated.client.get("/health/live").status_code == 200

    migrations.upgrade(unmigrated.url)

    response = unmigrated.client.get("/health/ready")
    assert response.status_code == 200, response.text


def test_not_ready_when_migrated_to_an_older_revision(unmigrated: Unmigrated) -> None:
    migrations.upgrade(unmigrated.url)
    migrations.downgrade(unmigrated.url, "base")
    assert_detail_error(unmigrated.client.get("/health/ready"), 503)


# --- who is told where the replicas are ------------------------------------------------------

SECRET = "health-test-secret-of-at-least-32-bytes"
A_FORGED_KEY = f"chatapi_sk_{'0' * 16}_{'0' * 64}"


class Replicated:
    """The app over a PostgreSQL database read on the suite's standby and on a replica that
    never answers, and its client."""

    def __init__(
        self, client: httpx.Client, container: Container, standby_port: int, closed_port: int
    ) -> None:
        self.client = client
        self.container = container
        self.standby_port = standby_port
        self.closed_port = closed_port

    def ready(self, **headers: str) -> httpx.Response:
        response = self.client.get("/health/ready", headers=headers)
        assert response.status_code == 200, response.text
        return response


@contextmanager
def replicated(
    databases: EmptyDatabases, standby: PostgresCluster, **settings: Any
) -> Iterator[Replicated]:
    url = databases.new("postgresql")
    migrations.upgrade(url)
    caught_up(url, standby)
    closed_port = free_port()
    unreachable = make_url(on(standby, url)).set(port=closed_port)
    replicas = f"{on(standby, url)},{unreachable.render_as_string(hide_password=False)}"
    container = container_for(url, read_database_url=replicas, access_log=False, **settings)
    with client_of(container) as http:
        yield Replicated(http, container, standby.port, closed_port)


def assert_bare(response: httpx.Response, where: Replicated) -> None:
    """Whether each replica is up, and nothing that names, locates or times one."""
    assert response.json() == {"status": "ready", "read_targets": [{"up": True}, {"up": False}]}
    for told in (str(where.standby_port), str(where.closed_port), "127.0.0.1", "lag"):
        assert told not in response.text, response.text


def assert_detailed(response: httpx.Response, where: Replicated) -> None:
    up, down = response.json()["read_targets"]
    assert up["target"].startswith(f"127.0.0.1:{where.standby_port}/"), up
    assert up["up"] is True, up
    assert 0 <= up["replay_lag_seconds"] < 5, up
    assert down == {"target": down["target"], "up": False}, down
    assert down["target"].startswith(f"127.0.0.1:{where.closed_port}/"), down


@pytest.fixture
def secured_replicas(databases: EmptyDatabases, standby: PostgresCluster) -> Iterator[Replicated]:
    with replicated(databases, standby, auth_mode="required", auth_jwt_secret=SECRET) as where:
        yield where


def test_anyone_is_told_only_whether_each_replica_is_up(secured_replicas: Replicated) -> None:
    assert_bare(secured_replicas.ready(), secured_replicas)


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {A_FORGED_KEY}",
        "Bearer not-a-token",
        "Bearer",
        f"Basic {A_FORGED_KEY}",
        "Bearer chatapi_sk_short",
    ],
    ids=["forged-key", "garbage", "empty", "not-bearer", "malformed-key"],
)
def test_a_credential_that_is_not_a_services_key_gets_the_bare_answer_not_an_error(
    secured_replicas: Replicated, authorization: str
) -> None:
    response = secured_replicas.ready(Authorization=authorization)
    assert_bare(response, secured_replicas)
    assert "www-authenticate" not in response.headers


def test_a_users_token_gets_the_bare_answer(secured_replicas: Replicated) -> None:
    tokens = secured_replicas.container.user_tokens()
    assert tokens is not None
    token = tokens.mint("ann", timedelta(minutes=5), secured_replicas.container.clock()())
    assert_bare(secured_replicas.ready(Authorization=f"Bearer {token}"), secured_replicas)


def test_a_services_key_is_told_where_each_replica_is(secured_replicas: Replicated) -> None:
    keys = secured_replicas.container.api_keys()
    info, key = keys.create("operator")
    assert_detailed(secured_replicas.ready(Authorization=f"Bearer {key}"), secured_replicas)

    keys.revoke(info.id)
    assert_bare(secured_replicas.ready(Authorization=f"Bearer {key}"), secured_replicas)


def test_without_authentication_every_caller_is_the_local_service(
    databases: EmptyDatabases, standby: PostgresCluster
) -> None:
    """AUTH_MODE=none serves loopback only (unless ALLOW_UNAUTHENTICATED): whoever can ask
    may read and delete every chat, and is told where the replicas are too."""
    with replicated(databases, standby, auth_mode="none") as where:
        assert_detailed(where.ready(), where)
