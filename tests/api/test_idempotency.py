"""The Idempotency-Key header on the two creating operations."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from infrastructure.container import Container
from tests.api.helpers import Json, assert_validation_error, get_chat
from tests.support.database import count_rows


def post(client: httpx.Client, path: str, body: Json, key: str) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def test_a_retried_create_gets_the_first_response(
    client: httpx.Client, container: Container
) -> None:
    first = post(client, "/chats/", {"title": "Standup"}, "c-1")
    again = post(client, "/chats/", {"title": "Standup"}, "c-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert count_rows(container.write_engine(), "chats") == 1


def test_a_retried_post_gets_the_first_response(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    path = f"/chats/{chat['id']}/messages/"
    first = post(client, path, {"text": "hello"}, "m-1")
    again = post(client, path, {"text": "hello"}, "m-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert get_chat(client, chat["id"])["message_count"] == 1


@pytest.mark.parametrize("operation", ["create", "post"])
def test_only_a_replayed_response_says_so(client: httpx.Client, chat: Json, operation: str) -> None:
    path, body = (
        ("/chats/", {"title": "Standup"})
        if operation == "create"
        else (f"/chats/{chat['id']}/messages/", {"text": "hello"})
    )
    first = post(client, path, body, "r-1")
    again = post(client, path, body, "r-1")
    unkeyed = client.post(path, json=body)

    assert first.status_code == again.status_code == unkeyed.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in unkeyed.headers
    # The replay is the first response in full, its Location included.
    assert again.headers["location"] == first.headers["location"]


@pytest.mark.parametrize("path", ["/chats/", "/chats/{chat_id}/messages/"])
def test_the_replay_header_is_declared(spec: Json, path: str) -> None:
    headers = spec["paths"][path]["post"]["responses"]["201"]["headers"]
    replayed = headers["Idempotent-Replayed"]
    # Declared once, in components, and referred to by each operation that may replay.
    if "$ref" in replayed:
        prefix = "#/components/headers/"
        assert replayed["$ref"].startswith(prefix), replayed
        replayed = spec["components"]["headers"][replayed["$ref"].removeprefix(prefix)]
    assert replayed.get("required", False) is False  # absent on a first write
    assert replayed["schema"] == {"type": "string", "enum": ["true"]}
    assert replayed["description"]


@pytest.mark.parametrize("operation", ["create", "post"])
def test_a_key_reused_with_another_body_is_422_and_changes_nothing(
    client: httpx.Client, container: Container, chat: Json, operation: str
) -> None:
    path, field = (
        ("/chats/", "title")
        if operation == "create"
        else (
            f"/chats/{chat['id']}/messages/",
            "text",
        )
    )
    assert post(client, path, {field: "first"}, "k").status_code == 201
    engine = container.write_engine()
    before = (count_rows(engine, "chats"), count_rows(engine, "messages"))

    errors = assert_validation_error(post(client, path, {field: "second"}, "k"), "header")

    assert errors[0]["type"] == "idempotency_key_reused"
    assert (count_rows(engine, "chats"), count_rows(engine, "messages")) == before


@pytest.mark.parametrize(
    "key", ["x" * 256, "two words", "é"], ids=["too-long", "space", "non-ascii"]
)
def test_a_malformed_key_is_422(client: httpx.Client, container: Container, key: str) -> None:
    response = client.post(
        "/chats/",
        json={"title": "Standup"},
        headers={b"Idempotency-Key": key.encode()},  # raw UTF-8 bytes on the wire
    )
    assert_validation_error(response, "header")
    assert count_rows(container.write_engine(), "chats") == 0


def test_concurrent_retries_create_exactly_one_chat(
    client: httpx.Client, container: Container, server_url: str
) -> None:
    def attempt(_: int) -> httpx.Response:
        with httpx.Client(base_url=server_url, timeout=30) as http:
            return post(http, "/chats/", {"title": "Standup"}, "race")

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(attempt, range(10)))

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert count_rows(container.write_engine(), "chats") == 1
    # One of them created it; every other one was answered with its response.
    assert [r.headers.get("idempotent-replayed") for r in responses].count(None) == 1


def test_the_header_is_declared(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/chats/", "/chats/{chat_id}/messages/"):
        parameters = spec["paths"][path]["post"]["parameters"]
        header = next(p for p in parameters if p["name"] == "idempotency-key")
        assert header["in"] == "header"
        assert header["required"] is False
        assert header["description"]


def test_a_create_retried_after_its_chat_is_deleted_does_not_name_the_deleted_chat(
    client: httpx.Client,
) -> None:
    """The key goes with the chat, as a message's does: the retry makes a chat anew rather
    than replaying a 201 that names a chat every read answers 404 for."""
    headers = {"Idempotency-Key": "create-then-delete"}
    first = client.post("/chats/", json={"title": "short-lived"}, headers=headers)
    assert first.status_code == 201, first.text
    assert client.delete(f"/chats/{first.json()['id']}").status_code == 204

    again = client.post("/chats/", json={"title": "short-lived"}, headers=headers)

    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert client.get(f"/chats/{again.json()['id']}").status_code == 200
