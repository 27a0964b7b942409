"""A database whose schema is missing or behind: every request is a 503 that says to migrate.

Never a 500, never a request served on the wrong schema: an empty database, and one migrated
only to an older revision (where some reads would still succeed), refuse every operation
with 503, Retry-After and a detail naming `chatapi migrate`, until the database is migrated;
then the service works without a restart.
"""

from collections.abc import Iterator

import httpx
import pytest

from infrastructure import migrations
from tests.api.helpers import assert_detail_error, assert_validation_error, create_chat
from tests.conftest import EmptyDatabases
from tests.support.servers import client_of, container_for

RETRY_AFTER = 9
OLDER_REVISION = "0002"  # before 0003, which added the chat list's columns

OPERATIONS: list[tuple[str, str, dict[str, str] | None]] = [
    ("GET", "/chats/1", None),
    ("GET", "/chats/1?limit=5", None),
    ("POST", "/chats/", {"title": "Weekend plans"}),
    ("POST", "/chats/1/messages/", {"text": "hello"}),
    ("DELETE", "/chats/1", None),
    ("GET", "/chats/", None),
    ("GET", "/chats/1/messages/", None),
]
OPERATION_IDS = [f"{method} {path}" for method, path, _ in OPERATIONS]


def new_database(databases: EmptyDatabases, backend: str, revision: str | None) -> str:
    """A new database of `backend`, migrated up to `revision` (None: left empty)."""
    url = databases.new(backend)
    if revision is not None:
        migrations.upgrade(url, revision)
    return url


@pytest.fixture(scope="module", params=[None, OLDER_REVISION], ids=["empty", OLDER_REVISION])
def unmigrated(
    request: pytest.FixtureRequest, backend: str, databases: EmptyDatabases
) -> Iterator[httpx.Client]:
    """A client of the app over an empty database, or one at an older revision."""
    url = new_database(databases, backend, request.param)
    with client_of(container_for(url, retry_after=RETRY_AFTER)) as http:
        yield http


def send(
    client: httpx.Client, method: str, path: str, body: dict[str, str] | None
) -> httpx.Response:
    return client.request(method, path, json=body, headers={"X-Request-ID": "unmigrated-1"})


def assert_not_migrated(response: httpx.Response) -> None:
    detail = assert_detail_error(response, 503)
    assert "migration" in detail
    assert "chatapi migrate" in detail
    assert response.headers.get("Retry-After") == str(RETRY_AFTER), response.headers
    assert response.headers.get("X-Request-ID") == "unmigrated-1", response.headers


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=OPERATION_IDS)
def test_every_operation_is_503_until_migrated(
    unmigrated: httpx.Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    assert_not_migrated(send(unmigrated, method, path, body))


def test_it_stays_503_on_repeated_requests(unmigrated: httpx.Client) -> None:
    for method, path, body in OPERATIONS * 2:
        assert_not_migrated(send(unmigrated, method, path, body))


def test_an_invalid_request_is_still_422(unmigrated: httpx.Client) -> None:
    """Validation needs no database, and comes first, as it does when the database is down."""
    assert_validation_error(unmigrated.post("/chats/", json={"title": "  "}), "body", "title")
    assert_validation_error(unmigrated.get("/chats/1?limit=0"), "query", "limit")


def test_readiness_says_the_same(unmigrated: httpx.Client) -> None:
    response = unmigrated.get("/health/ready")
    assert "chatapi migrate" in assert_detail_error(response, 503)
    assert response.headers.get("Retry-After") == str(RETRY_AFTER)


@pytest.mark.parametrize("revision", [None, OLDER_REVISION], ids=["empty", OLDER_REVISION])
def test_migrating_makes_it_work_without_a_restart(
    databases: EmptyDatabases, backend: str, revision: str | None
) -> None:
    url = new_database(databases, backend, revision)
    with client_of(container_for(url, retry_after=RETRY_AFTER)) as http:
        assert_not_migrated(send(http, "POST", "/chats/", {"title": "early"}))

        migrations.upgrade(url)

        chat = create_chat(http)
        shown = http.get(f"/chats/{chat['id']}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["title"] == chat["title"]


def test_a_schema_downgraded_under_the_service_is_noticed(
    databases: EmptyDatabases, backend: str
) -> None:
    """At head the service does not check again; the first statement the older schema fails
    makes it check, and then even the requests the older schema could serve are refused."""
    url = new_database(databases, backend, "head")
    with client_of(container_for(url, retry_after=RETRY_AFTER)) as http:
        chat = create_chat(http)

        migrations.downgrade(url, OLDER_REVISION)

        # chat_views has lost the chat list's columns, which creating a chat projects into.
        assert_not_migrated(send(http, "POST", "/chats/", {"title": "after"}))
        # The older schema could serve this read, but the service now knows it is behind.
        assert_not_migrated(send(http, "GET", f"/chats/{chat['id']}", None))

        migrations.upgrade(url)

        shown = http.get(f"/chats/{chat['id']}")
        assert shown.status_code == 200, shown.text
        assert create_chat(http)["title"] == "Weekend plans"
