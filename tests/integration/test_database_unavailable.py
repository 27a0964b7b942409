"""The contract's "database unreachable: 503 with Retry-After, never a 500".

A database that refuses connections, one that does not exist, a pool with no free connection,
and a server that drops every connection under a running service: each request gets a 503
with Retry-After (or succeeds), never a 500, and the service recovers by itself.
"""

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from devtools.ports import free_port
from infrastructure import migrations
from tests.conftest import EmptyDatabases
from tests.support.database import open_sessions, terminate_other_connections
from tests.support.servers import client_of, container_for

RETRY_AFTER = 11
RECOVERY_ATTEMPTS = 20
RECOVERY_PAUSE_SECONDS = 0.25

# Every operation of the API, with and without its trailing slash.
OPERATIONS: list[tuple[str, str, dict[str, str] | None]] = [
    ("POST", "/chats/", {"title": "Weekend plans"}),
    ("POST", "/chats", {"title": "Weekend plans"}),
    ("POST", "/chats/1/messages/", {"text": "hello"}),
    ("POST", "/chats/1/messages", {"text": "hello"}),
    ("GET", "/chats/1", None),
    ("GET", "/chats/1/", None),
    ("GET", "/chats/1?limit=5", None),
    ("DELETE", "/chats/1", None),
    ("DELETE", "/chats/1/", None),
]
OPERATION_IDS = [f"{method} {path}" for method, path, _ in OPERATIONS]

# Requests that are invalid whatever the database holds: validation comes first.
INVALID_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/chats/", {"title": "   "}),
    ("POST", "/chats/", {"title": "x" * 201}),
    ("POST", "/chats/", {}),
    ("POST", "/chats/", "not an object"),
    ("POST", "/chats/1/messages/", {"text": ""}),
    ("POST", "/chats/1/messages/", {"text": " \n\t "}),
    ("POST", "/chats/1/messages/", {"text": "x" * 5001}),
    ("POST", "/chats/1/messages/", {"wrong": "field"}),
    ("GET", "/chats/1?limit=0", None),
    ("GET", "/chats/1?limit=101", None),
    ("GET", "/chats/1?limit=abc", None),
    ("GET", "/chats/abc", None),
    ("DELETE", "/chats/abc", None),
]
INVALID_IDS = [f"{method} {path} {body!r}"[:60] for method, path, body in INVALID_REQUESTS]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers.get("Retry-After") == str(RETRY_AFTER), response.headers
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}, body
    assert isinstance(body["detail"], str), body
    assert body["detail"], body


def assert_validation_error(response: httpx.Response) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    assert "Retry-After" not in response.headers
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    assert detail, detail
    for error in detail:
        assert {"loc", "msg", "type"} <= set(error), error


def send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    if body is None:
        return client.request(method, path)
    return client.request(method, path, json=body)


# --- a PostgreSQL server that refuses connections -----------------------------------------------


@pytest.fixture(scope="module")
def refused_client() -> Iterator[httpx.Client]:
    """The app over a PostgreSQL URL on a loopback port where nothing listens."""
    url = f"postgresql+psycopg2://chatapi:secret@127.0.0.1:{free_port()}/chatapi"
    with client_of(container_for(url, retry_after=RETRY_AFTER, db_connect_timeout=2)) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=OPERATION_IDS)
def test_a_refused_connection_is_503_with_retry_after(
    refused_client: httpx.Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    assert_unavailable(send(refused_client, method, path, body))


def test_a_refused_connection_stays_503(refused_client: httpx.Client) -> None:
    for method, path, body in OPERATIONS * 2:
        assert_unavailable(send(refused_client, method, path, body))


def test_the_503_does_not_leak_the_database_url(refused_client: httpx.Client) -> None:
    response = refused_client.post("/chats/", json={"title": "hi"})

    assert_unavailable(response)
    assert "secret" not in response.text
    assert "127.0.0.1" not in response.text


@pytest.mark.parametrize(("method", "path", "body"), INVALID_REQUESTS, ids=INVALID_IDS)
def test_validation_comes_before_the_database(
    refused_client: httpx.Client, method: str, path: str, body: Any
) -> None:
    assert_validation_error(send(refused_client, method, path, body))


def test_malformed_json_is_422_without_the_database(refused_client: httpx.Client) -> None:
    response = refused_client.post(
        "/chats/", content=b'{"title": ', headers={"content-type": "application/json"}
    )

    assert_validation_error(response)


def test_the_docs_need_no_database(refused_client: httpx.Client) -> None:
    assert refused_client.get("/docs").status_code == 200
    assert refused_client.get("/openapi.json").status_code == 200


def test_the_503_is_declared_in_the_openapi_document(refused_client: httpx.Client) -> None:
    paths = refused_client.get("/openapi.json").json()["paths"]
    # Liveness is the one operation that never touches the database.
    database_bound = {path: ops for path, ops in paths.items() if path != "/health/live"}
    assert database_bound
    for path, operations in database_bound.items():
        for method, operation in operations.items():
            assert "503" in operation["responses"], (method, path)


# --- a PostgreSQL server that is up, without the configured database ---------------------------


def test_a_missing_database_is_503(databases: EmptyDatabases) -> None:
    existing = make_url(databases.new("postgresql"))
    missing = existing.set(database="chatapi_no_such_database")
    url = missing.render_as_string(hide_password=False)
    with client_of(container_for(url, retry_after=RETRY_AFTER)) as client:
        for method, path, body in OPERATIONS:
            assert_unavailable(send(client, method, path, body))


# --- no free connection in the pool -------------------------------------------------------------


def test_an_exhausted_pool_is_503(backend: str, databases: EmptyDatabases) -> None:
    url = databases.new(backend)
    migrations.upgrade(url)
    container = container_for(
        url, retry_after=RETRY_AFTER, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5
    )
    with client_of(container) as client:
        created = client.post("/chats/", json={"title": "busy"})
        assert created.status_code == 201, created.text
        chat = created.json()["id"]

        # Hold the only connection of each engine: requests wait pool_timeout, then 503.
        with container.write_engine().connect(), container.read_engine().connect():
            assert_unavailable(client.post("/chats/", json={"title": "waits"}))
            # With a key: a post without one runs on the loop's own connections.
            keyed = {"Idempotency-Key": "exhausted-1"}
            assert_unavailable(
                client.post(f"/chats/{chat}/messages/", json={"text": "x"}, headers=keyed)
            )
            # A read through the read engine (on PostgreSQL a chat, its history and the list
            # read on the loop's own connections: their wait is test_loop_database.py's).
            assert_unavailable(client.get(f"/chats/{chat}/members/"))
            assert_unavailable(client.delete(f"/chats/{chat}"))

        # Connections are back in the pool: everything works, nothing half-done remains.
        shown = client.get(f"/chats/{chat}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["messages"] == []
        assert client.post("/chats/", json={"title": "free"}).status_code == 201


# --- the server drops every connection under a running service ----------------------------------


@pytest.fixture
def postgres_url(databases: EmptyDatabases) -> str:
    """A migrated PostgreSQL database of this test's own, so no other test sees the drop."""
    url = databases.new("postgresql")
    migrations.upgrade(url)
    return url


@pytest.fixture
def live(postgres_url: str) -> Iterator[httpx.Client]:
    with client_of(container_for(postgres_url, retry_after=RETRY_AFTER)) as client:
        yield client


@pytest.fixture
def admin_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def exercise(client: httpx.Client, chat: int) -> list[httpx.Response]:
    """One request of every kind, on both engines."""
    return [
        client.post("/chats/", json={"title": "after the drop"}),
        client.post(f"/chats/{chat}/messages/", json={"text": "still here"}),
        client.get(f"/chats/{chat}"),
    ]


def assert_available_or_503(response: httpx.Response) -> None:
    assert response.status_code != 500, response.text
    if response.status_code == 503:
        assert_unavailable(response)
    else:
        assert response.status_code in (200, 201, 204), (response.status_code, response.text)


def wait_until_recovered(client: httpx.Client, chat: int) -> None:
    """Requests of every kind succeed again within a bounded number of attempts."""
    for _ in range(RECOVERY_ATTEMPTS):
        responses = exercise(client, chat)
        for response in responses:
            assert_available_or_503(response)
        if all(response.status_code in (200, 201) for response in responses):
            return
        time.sleep(RECOVERY_PAUSE_SECONDS)
    pytest.fail(f"the service did not recover after {RECOVERY_ATTEMPTS} attempts")


def test_dropped_connections_are_503_or_success_then_recover(
    live: httpx.Client, admin_engine: Engine
) -> None:
    client = live
    created = client.post("/chats/", json={"title": "before the drop"})
    assert created.status_code == 201, created.text
    chat = created.json()["id"]
    assert client.post(f"/chats/{chat}/messages/", json={"text": "one"}).status_code == 201
    assert client.get(f"/chats/{chat}").status_code == 200  # the read pool holds one too

    assert open_sessions(admin_engine) >= 2  # the pooled connections of both engines
    assert terminate_other_connections(admin_engine) >= 2

    # The first request on each dead pooled connection: a 503 or, retried, a success.
    for response in exercise(client, chat):
        assert_available_or_503(response)

    wait_until_recovered(client, chat)

    shown = client.get(f"/chats/{chat}?limit=100")
    assert shown.status_code == 200, shown.text
    texts = [message["text"] for message in shown.json()["messages"]]
    assert texts[0] == "one"
    assert set(texts) <= {"one", "still here"}
    assert shown.json()["message_count"] == len(texts)
    assert client.delete(f"/chats/{chat}").status_code == 204
    assert client.get(f"/chats/{chat}").status_code == 404


def test_repeated_drops_are_survived(live: httpx.Client, admin_engine: Engine) -> None:
    client = live
    created = client.post("/chats/", json={"title": "again and again"})
    assert created.status_code == 201, created.text
    chat = created.json()["id"]

    for _ in range(3):
        terminate_other_connections(admin_engine)
        response = client.delete(f"/chats/{chat + 10**6}")  # a missing chat: 404 once recovered
        assert response.status_code in (404, 503), (response.status_code, response.text)
        if response.status_code == 503:
            assert_unavailable(response)
        wait_until_recovered(client, chat)


def test_a_drop_during_a_burst_is_never_a_500(live: httpx.Client, admin_engine: Engine) -> None:
    """Connections are cut while requests are in flight, from a pool with many connections."""
    client = live
    created = client.post("/chats/", json={"title": "burst"})
    assert created.status_code == 201, created.text
    chat = created.json()["id"]

    def post(n: int) -> httpx.Response:
        return client.post(f"/chats/{chat}/messages/", json={"text": f"burst {n}"})

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(post, n) for n in range(40)]
        time.sleep(0.05)
        terminate_other_connections(admin_engine)
        responses = [future.result(timeout=120) for future in futures]

    for response in responses:
        assert_available_or_503(response)
    wait_until_recovered(client, chat)

    # What got a 201 is stored; what got a 503 may or may not be, but nothing is duplicated.
    shown = client.get(f"/chats/{chat}?limit=100")
    assert shown.status_code == 200, shown.text
    stored = [m["text"] for m in shown.json()["messages"] if m["text"].startswith("burst ")]
    assert len(stored) == len(set(stored)), stored
    accepted = {f"burst {n}" for n, r in enumerate(responses) if r.status_code == 201}
    assert accepted <= set(stored)
