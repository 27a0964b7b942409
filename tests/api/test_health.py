"""The probes: liveness needs nothing, readiness needs a reachable database at head."""

from collections.abc import Iterator

import httpx
import pytest

from infrastructure import migrations
from tests.api.helpers import assert_detail_error
from tests.conftest import EmptyDatabases
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
