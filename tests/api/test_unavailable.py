"""A database that cannot be reached is a 503 with Retry-After, never a 500."""

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import assert_detail_error, assert_validation_error
from tests.support.servers import client_of, container_for

RETRY_AFTER = 7


@pytest.fixture(scope="module")
def unreachable_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database URL of the current backend that refuses every connection."""
    if backend == "sqlite":
        directory = tmp_path_factory.mktemp("unreachable") / "no-such-directory"
        yield f"sqlite:///{directory}/chatapi.db"
        return
    # A bound port nobody listens on: connections to it are refused at once.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        yield f"postgresql+psycopg2://chatapi@127.0.0.1:{port}/chatapi"


@pytest.fixture(scope="module")
def down_client(unreachable_url: str) -> Iterator[httpx.Client]:
    """A client of the app served over a database that cannot be reached."""
    with client_of(container_for(unreachable_url, retry_after=RETRY_AFTER)) as http:
        yield http


OPERATIONS = [
    ("POST", "/chats/", {"title": "Weekend plans"}),
    ("POST", "/chats/1/messages/", {"text": "hello"}),
    ("GET", "/chats/1", None),
    ("GET", "/chats/1?limit=5", None),
    ("DELETE", "/chats/1", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_every_operation_is_503_with_retry_after(
    down_client: httpx.Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = down_client.request(method, path, json=body)

    assert_detail_error(response, 503)
    assert response.headers["Retry-After"] == str(RETRY_AFTER)


def test_it_stays_503_on_repeated_requests(down_client: httpx.Client) -> None:
    for _ in range(3):
        assert_detail_error(down_client.get("/chats/1"), 503)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/chats/", {"title": "  "}, "title"),
        ("/chats/1/messages/", {"text": ""}, "text"),
    ],
)
def test_an_invalid_body_is_422_without_the_database(
    down_client: httpx.Client, path: str, body: dict[str, str], field: str
) -> None:
    assert_validation_error(down_client.post(path, json=body), "body", field)


def test_liveness_does_not_depend_on_the_database(down_client: httpx.Client) -> None:
    response = down_client.get("/health/live")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "alive"}


def test_readiness_is_503_with_retry_after(down_client: httpx.Client) -> None:
    response = down_client.get("/health/ready")
    assert_detail_error(response, 503)
    assert response.headers["retry-after"] == str(RETRY_AFTER)
