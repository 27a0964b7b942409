"""A header the API reads as one value, sent twice: a 422 that changes nothing, not a guess.

Two `Idempotency-Key`s were keyed on the first; the same held for the other headers a client
sends once (`Consistency-Token`, `Last-Event-ID`, `Authorization`).
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infrastructure.container import Container
from tests.api.helpers import Json, assert_validation_error
from tests.auth.conftest import SECRET, bearer, token
from tests.support.database import count_rows
from tests.support.servers import container_for, new_client, served

# (header, two values, method, path, json body): each on an operation that reads it.
REPEATS = {
    "idempotency-key-create": (
        "Idempotency-Key",
        ("k-1", "k-2"),
        "POST",
        "/chats/",
        {"title": "Standup"},
    ),
    "idempotency-key-post": (
        "Idempotency-Key",
        ("k-1", "k-2"),
        "POST",
        "/chats/{chat_id}/messages/",
        {"text": "hello"},
    ),
    "idempotency-key-same-twice": (
        "Idempotency-Key",
        ("k-1", "k-1"),
        "POST",
        "/chats/",
        {"title": "Standup"},
    ),
    "consistency-token": ("Consistency-Token", ("0/1", "0/2"), "GET", "/chats/{chat_id}", None),
    "last-event-id": ("Last-Event-ID", ("0", "1"), "GET", "/chats/{chat_id}/events", None),
    "authorization": (
        "Authorization",
        ("Bearer one", "Bearer two"),
        "POST",
        "/chats/",
        {"title": "Standup"},
    ),
}


def stored(container: Container) -> list[int]:
    engine = container.write_engine()
    return [count_rows(engine, table) for table in ("chats", "messages", "idempotency_keys")]


def request(client: httpx.Client, method: str, path: str, **options: Any) -> httpx.Response:
    """The response, its body read unless it is a stream that went on (which it must not)."""
    with client.stream(method, path, **options) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
    return response


@pytest.mark.parametrize("name", list(REPEATS))
def test_a_header_sent_twice_is_422_and_changes_nothing(
    client: httpx.Client, container: Container, chat: Json, name: str
) -> None:
    header, values, method, template, body = REPEATS[name]
    before = stored(container)

    response = request(
        client,
        method,
        template.format(chat_id=chat["id"]),
        json=body,
        headers=[(header, value) for value in values],
    )

    errors = assert_validation_error(response)
    assert errors == [
        {
            "type": "header_repeated",
            "loc": ["header", header.lower()],
            "msg": f"{header} was sent 2 times: send it once",
        }
    ]
    assert stored(container) == before


def test_each_header_sent_twice_is_named(client: httpx.Client, container: Container) -> None:
    headers = [
        ("Idempotency-Key", "k-1"),
        ("Consistency-Token", "0/1"),
        ("idempotency-key", "k-2"),
        ("Consistency-Token", "0/1"),
        ("IDEMPOTENCY-KEY", "k-3"),
    ]

    response = client.post("/chats/", json={"title": "Standup"}, headers=headers)

    errors = assert_validation_error(response)
    assert [(error["loc"], error["msg"]) for error in errors] == [
        (["header", "idempotency-key"], "Idempotency-Key was sent 3 times: send it once"),
        (["header", "consistency-token"], "Consistency-Token was sent 2 times: send it once"),
    ]
    assert count_rows(container.write_engine(), "chats") == 0


def test_other_headers_may_repeat(client: httpx.Client, container: Container) -> None:
    """Only the headers read as one value are held to it: `Accept` is a list, and a header
    the API does not read is none of its business."""
    headers = [
        ("Idempotency-Key", "k-1"),
        ("Accept", "application/json"),
        ("Accept", "*/*"),
        ("X-Forwarded-For", "192.0.2.1"),
        ("X-Forwarded-For", "192.0.2.2"),
    ]

    response = client.post("/chats/", json={"title": "Standup"}, headers=headers)

    assert response.status_code == 201, response.text
    assert count_rows(container.write_engine(), "chats") == 1


@pytest.fixture(scope="module")
def secured_url(database_url: str) -> Iterator[str]:
    """The app over the session's database with AUTH_MODE=required."""
    settings = {"auth_mode": "required", "auth_jwt_secret": SECRET, "access_log": False}
    with served(container_for(database_url, **settings)) as url:
        yield url


def test_two_credentials_are_422_when_credentials_count(
    container: Container, secured_url: str
) -> None:
    """With AUTH_MODE=required too: a 422 before authentication, not a 401 nor acting as
    either user."""
    one, two = bearer(token("ann")), bearer(token("bob"))
    headers = [*one.items(), *two.items()]

    with new_client(secured_url) as client:
        alone = client.post("/chats/", json={"title": "Standup"}, headers=one)
        response = client.post("/chats/", json={"title": "Standup"}, headers=headers)

    assert alone.status_code == 201, alone.text
    errors = assert_validation_error(response, "header", "authorization")
    assert len(errors) == 1, errors
    assert count_rows(container.write_engine(), "chats") == 1
