"""MAX_STREAMS_PER_USER: one user cannot hold every stream slot of a process. The next stream is
a 429 with Retry-After; a stream that ends (the client hangs up) gives its slot back, and one
refused before it started (a 404) never took one. Services are bounded by MAX_STREAMS alone."""

import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from infrastructure.container import Container
from tests.auth.conftest import SECRET, bearer, token
from tests.support.servers import container_for, new_client, served
from tests.support.sse import open_events

PER_USER = 2
ANN, BOB = bearer(token("ann")), bearer(token("bob"))


@pytest.fixture
def capped(container: Container, database_url: str) -> Iterator[tuple[httpx.Client, Container]]:
    own = container_for(
        database_url,
        auth_mode="required",
        auth_jwt_secret=SECRET,
        max_streams_per_user=PER_USER,
        access_log=False,
    )
    with served(own) as base_url, new_client(base_url) as client:
        yield client, own


def status_of_another(client: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    """A 429 (or 404) answers at once; a 200 would stream, and is not asked for here."""
    return client.get(path, headers=headers, params={"after": 0})


def test_a_user_gets_their_slots_and_a_429_beyond(
    capped: tuple[httpx.Client, Container],
) -> None:
    client, own = capped
    chat = client.post("/chats/", json={"title": "slots"}, headers=ANN).json()["id"]
    client.put(f"/chats/{chat}/members/bob", json={"role": "member"}, headers=ANN)
    _, key = own.api_keys().create("bridge")
    path = f"/chats/{chat}/events"
    # Refused before it starts: no slot taken.
    assert client.get(f"/chats/{chat + 1000}/events", headers=ANN).status_code == 404
    with ExitStack() as streams:
        for _ in range(PER_USER):
            streams.enter_context(open_events(client, path, after=0, headers=ANN))
        refused = status_of_another(client, path, ANN)
        assert refused.status_code == 429, refused.text
        assert refused.json() == {"detail": refused.json()["detail"]}
        assert int(refused.headers["retry-after"]) >= 0
        # Others are not held back by ann's streams; a service is not counted per user.
        with (
            open_events(client, path, after=0, headers=BOB),
            open_events(client, path, after=0, headers=bearer(key)),
            open_events(client, path, after=0, headers=bearer(key)),
            open_events(client, path, after=0, headers=bearer(key)),
        ):
            pass
    # Hung up: the slots come back, as soon as the server has seen the disconnects.
    deadline = time.monotonic() + 5
    while not all_open_at_once(client, path):
        assert time.monotonic() < deadline, "the slots did not come back"
        time.sleep(0.05)


def all_open_at_once(client: httpx.Client, path: str) -> bool:
    """Whether ann gets PER_USER streams open together now (closed again after)."""
    with ExitStack() as streams:
        for _ in range(PER_USER):
            response = streams.enter_context(
                client.stream("GET", path, headers=ANN, params={"after": 0})
            )
            if response.status_code != 200:
                assert response.status_code == 429, response.status_code
                return False
    return True
