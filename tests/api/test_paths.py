"""Every path answers with and without its trailing slash, directly: never a redirect."""

import httpx
import pytest

from tests.api.helpers import Json, assert_detail_error, assert_validation_error, create_chat

# (method, path with {chat_id}, json body, success status)
OPERATIONS = [
    ("POST", "/chats/", {"title": "Weekend plans"}, 201),
    ("POST", "/chats", {"title": "Weekend plans"}, 201),
    ("POST", "/chats/{chat_id}/messages/", {"text": "hello"}, 201),
    ("POST", "/chats/{chat_id}/messages", {"text": "hello"}, 201),
    ("GET", "/chats/{chat_id}", None, 200),
    ("GET", "/chats/{chat_id}/", None, 200),
    ("GET", "/chats/{chat_id}?limit=5", None, 200),
    ("GET", "/chats/{chat_id}/?limit=5", None, 200),
    ("DELETE", "/chats/{chat_id}", None, 204),
    ("DELETE", "/chats/{chat_id}/", None, 204),
]


def operation_id(operation: tuple[str, str, Json | None, int]) -> str:
    return f"{operation[0]} {operation[1]}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=operation_id)
def test_each_spelling_of_each_path_succeeds_directly(
    client: httpx.Client, chat: Json, operation: tuple[str, str, Json | None, int]
) -> None:
    method, template, body, success = operation

    response = client.request(method, template.format(chat_id=chat["id"]), json=body)

    assert not response.is_redirect, response.headers
    assert response.status_code == success, response.text


@pytest.mark.parametrize("operation", OPERATIONS, ids=operation_id)
def test_each_spelling_of_each_path_fails_directly(
    client: httpx.Client, chat: Json, operation: tuple[str, str, Json | None, int]
) -> None:
    """Errors come from the endpoint itself, on both spellings: a 404 or a 422, no redirect."""
    method, template, body, _ = operation
    missing = str(chat["id"] + 1_000_000)
    invalid_body = None if body is None else dict.fromkeys(body, "   ")

    response = client.request(method, template.format(chat_id=missing), json=invalid_body)

    assert not response.is_redirect, response.headers
    if invalid_body is None:
        assert_detail_error(response, 404)
    else:
        assert_validation_error(response, "body", *invalid_body)


def test_both_spellings_reach_the_same_chat(client: httpx.Client) -> None:
    chat = create_chat(client)
    with_slash = client.post(f"/chats/{chat['id']}/messages/", json={"text": "one"})
    without_slash = client.post(f"/chats/{chat['id']}/messages", json={"text": "two"})

    assert (with_slash.status_code, without_slash.status_code) == (201, 201)
    assert client.get(f"/chats/{chat['id']}").json() == client.get(f"/chats/{chat['id']}/").json()
    shown = client.get(f"/chats/{chat['id']}/").json()
    assert shown["messages"] == [with_slash.json(), without_slash.json()]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/chats/", "GET, POST"),
        ("/chats", "GET, POST"),
        ("/chats/1", "DELETE, GET"),
        ("/chats/1/", "DELETE, GET"),
        ("/chats/1/messages/", "GET, POST"),
        ("/health/ready", "GET"),
    ],
)
def test_a_method_not_served_is_405_listing_every_method_that_is(
    client: httpx.Client, path: str, allowed: str
) -> None:
    response = client.request("PUT", path, json={})
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    assert response.json() == {"detail": "Method Not Allowed"}
