"""CORS: browser pages of the CORS_ORIGINS origins may call the API and read its headers."""

from collections.abc import Iterator

import httpx
import pytest

from infrastructure.container import Container
from tests.api.helpers import assert_detail_error
from tests.support.servers import container_for, new_client, served

FRONT_END = "https://chat.example.com"
OTHER_FRONT_END = "http://localhost:5173"
STRANGER = "https://evil.example"
REQUEST_HEADERS = {
    "content-type",
    "idempotency-key",
    "last-event-id",
    "x-request-id",
    "consistency-token",
}
RESPONSE_HEADERS = {
    "location",
    "x-request-id",
    "idempotent-replayed",
    "retry-after",
    "consistency-token",
}


@pytest.fixture(scope="module")
def cors_url(database_url: str) -> Iterator[str]:
    """The app over the session's database, for two front-ends."""
    with served(container_for(database_url, cors_origins=(FRONT_END, OTHER_FRONT_END))) as url:
        yield url


@pytest.fixture
def cors_client(container: Container, cors_url: str) -> Iterator[httpx.Client]:
    with new_client(cors_url) as http:
        yield http


def preflight(
    client: httpx.Client, origin: str, method: str = "POST", headers: str = ""
) -> httpx.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options("/chats/", headers=request_headers)


def listed(response: httpx.Response, header: str) -> set[str]:
    return {name.strip().lower() for name in response.headers.get(header, "").split(",")} - {""}


@pytest.mark.parametrize("origin", [FRONT_END, OTHER_FRONT_END])
def test_a_preflight_from_a_front_end_is_answered(cors_client: httpx.Client, origin: str) -> None:
    response = preflight(cors_client, origin, headers=", ".join(sorted(REQUEST_HEADERS)))

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == origin
    assert {"get", "post", "delete"} <= listed(response, "access-control-allow-methods")
    assert listed(response, "access-control-allow-headers") >= REQUEST_HEADERS
    assert int(response.headers["access-control-max-age"]) > 0
    assert "origin" in listed(response, "vary")


@pytest.mark.parametrize(
    ("origin", "method", "headers", "named"),
    [
        (STRANGER, "POST", "content-type", [f"origin {STRANGER}"]),
        # another port is another origin
        (FRONT_END + ":8443", "POST", "content-type", [f"origin {FRONT_END}:8443"]),
        (FRONT_END, "PATCH", "content-type", ["method PATCH"]),
        (FRONT_END, "POST", "content-type, X-Debug, x-trace", ['"X-Debug"', '"x-trace"']),
        (STRANGER, "PATCH", "x-debug", [STRANGER, "PATCH", '"x-debug"']),
    ],
    ids=["another-origin", "another-port", "unserved-method", "unknown-headers", "all-three"],
)
def test_a_preflight_for_anything_else_is_refused_in_json(
    cors_client: httpx.Client, origin: str, method: str, headers: str, named: list[str]
) -> None:
    response = preflight(cors_client, origin, method, headers)

    detail = assert_detail_error(response, 400)
    assert all(part in detail for part in named), detail
    # Nothing that would let a browser go on: no CORS header at all.
    assert not [name for name in response.headers if name.startswith("access-control-")]
    assert "origin" in listed(response, "vary")
    assert "x-request-id" in response.headers  # logged as any other answer


def test_a_request_from_a_front_end_may_read_the_response_headers(
    cors_client: httpx.Client,
) -> None:
    response = cors_client.post(
        "/chats/", json={"title": "from a browser"}, headers={"Origin": FRONT_END}
    )

    assert response.status_code == 201, response.text
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert listed(response, "access-control-expose-headers") >= RESPONSE_HEADERS
    assert "origin" in listed(response, "vary")
    assert "access-control-allow-credentials" not in response.headers


def test_a_request_from_another_origin_gets_no_cors_headers(cors_client: httpx.Client) -> None:
    response = cors_client.get("/chats/", headers={"Origin": STRANGER})

    assert response.status_code == 200  # the browser, not the server, withholds it
    assert "access-control-allow-origin" not in response.headers


def test_a_request_without_an_origin_is_served_as_before(cors_client: httpx.Client) -> None:
    response = cors_client.get("/chats/")

    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_a_refused_body_still_carries_cors_headers(cors_client: httpx.Client) -> None:
    """The size limit answers before the app: the browser must still be let to read the 413."""
    response = cors_client.post(
        "/chats/",
        content=b" " * (64 * 1024 + 1),
        headers={"Content-Type": "application/json", "Origin": FRONT_END},
    )

    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "x-request-id" in response.headers


def test_a_503_still_carries_cors_headers(tmp_path_factory: pytest.TempPathFactory) -> None:
    unreachable = tmp_path_factory.mktemp("cors-down") / "no-such-directory" / "chatapi.db"
    container = container_for(f"sqlite:///{unreachable}", cors_origins=(FRONT_END,))
    with served(container) as url:
        response = httpx.get(f"{url}/chats/1", headers={"Origin": FRONT_END}, timeout=30)

    assert response.status_code == 503, response.text
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "retry-after" in listed(response, "access-control-expose-headers")


def test_without_cors_origins_there_are_no_cors_headers(client: httpx.Client) -> None:
    answered = preflight(client, FRONT_END, headers="content-type")
    response = client.get("/chats/", headers={"Origin": FRONT_END})

    assert answered.status_code == 405  # no CORS: OPTIONS is a method like any other
    for given in (answered, response):
        assert not [name for name in given.headers if name.startswith("access-control-")]
