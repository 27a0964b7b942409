"""Every path answers with and without its trailing slash, directly: never a redirect.

And `HEAD` wherever `GET` is served, with the `GET`'s status and headers and no body.
"""

import socket

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
        ("/chats/", "GET, HEAD, POST"),
        ("/chats", "GET, HEAD, POST"),
        ("/chats/1", "DELETE, GET, HEAD"),
        ("/chats/1/", "DELETE, GET, HEAD"),
        ("/chats/1/messages/", "GET, HEAD, POST"),
        ("/health/ready", "GET, HEAD"),
        ("/health/ready/", "GET, HEAD"),
        ("/docs", "GET, HEAD"),
        ("/docs/", "GET, HEAD"),
        ("/openapi.json", "GET, HEAD"),
    ],
)
def test_a_method_not_served_is_405_listing_every_method_that_is(
    client: httpx.Client, path: str, allowed: str
) -> None:
    response = client.request("PUT", path, json={})
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    assert response.json() == {"detail": "Method Not Allowed"}


# Every path a GET is served on, in both spellings; {chat_id} is an existing chat's id.
GET_PATHS = [
    "/chats/",
    "/chats",
    "/chats/?limit=1",
    "/chats/{chat_id}",
    "/chats/{chat_id}/",
    "/chats/{chat_id}/messages/",
    "/chats/{chat_id}/messages",
    "/chats/{missing}",
    "/chats/{missing}/messages/",
    "/chats/{chat_id}?limit=0",
    "/health/live",
    "/health/live/",
    "/health/ready",
    "/health/ready/",
    "/docs",
    "/docs/",
    "/docs/oauth2-redirect",
    "/docs/oauth2-redirect/",
    "/redoc",
    "/redoc/",
    "/openapi.json",
    "/openapi.json/",
]

# Headers that differ between any two responses, whatever the method.
PER_RESPONSE = {"date", "x-request-id"}


def exchange(server_url: str, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and every byte after them, read off the socket until the server closes.

    Below httpx on purpose: a client knows a HEAD response has no body and would not read
    one a server wrongly sent.
    """
    url = httpx.URL(server_url)
    assert url.port is not None
    request = f"{method} {target} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n\r\n"
    received = b""
    with socket.create_connection((url.host, url.port), timeout=30) as connection:
        connection.sendall(request.encode())
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("template", GET_PATHS)
def test_head_answers_like_get_without_a_body(
    client: httpx.Client, server_url: str, chat: Json, template: str
) -> None:
    target = template.format(chat_id=chat["id"], missing=chat["id"] + 1_000_000)
    get_status, get_headers, get_body = exchange(server_url, "GET", target)
    head_status, head_headers, head_body = exchange(server_url, "HEAD", target)

    assert get_status != 307, get_headers  # each spelling answers directly
    assert head_status == get_status, head_headers
    assert head_body == b""
    assert head_headers["content-length"] == str(len(get_body))
    assert {k: v for k, v in head_headers.items() if k not in PER_RESPONSE} == {
        k: v for k, v in get_headers.items() if k not in PER_RESPONSE
    }


def test_head_is_not_a_documented_operation(spec: Json) -> None:
    """Served as part of each GET, not as operations of its own (nor a duplicate operationId)."""
    assert [path for path, methods in spec["paths"].items() if "head" in methods] == []


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_the_docs_answer_on_both_spellings_directly(client: httpx.Client, path: str) -> None:
    without_slash = client.get(path)
    with_slash = client.get(f"{path}/")

    assert not with_slash.is_redirect, with_slash.headers
    assert (without_slash.status_code, with_slash.status_code) == (200, 200)
    assert with_slash.headers["content-type"] == without_slash.headers["content-type"]
    assert with_slash.content == without_slash.content
