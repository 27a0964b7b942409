"""Malformed requests and ids: every one a 4xx in FastAPI's error shapes, never a 500."""

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from infrastructure.container import Container
from tests.api.helpers import (
    Json,
    assert_detail_error,
    assert_not_500,
    assert_validation_error,
    create_chat,
    get_chat,
    send_raw,
)
from tests.support.database import count_rows

# The two operations that take a body, and the field each body carries.
BODY_PATHS = ["/chats/", "/chats/{chat_id}/messages/"]
FIELD = {"/chats/": "title", "/chats/{chat_id}/messages/": "text"}


def body_path(template: str, chat: Json) -> str:
    return template.format(chat_id=chat["id"])


def padded_body(field: str, size: int) -> bytes:
    """A valid JSON body of exactly `size` bytes: whitespace after the object pads it."""
    body = f'{{"{field}": "hello"}}'.encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """The body as an iterator, which httpx sends chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
def nothing_stored(container: Container, chat: Json) -> Callable[[], None]:
    """Checks that the database still holds only the `chat` fixture, with no message."""

    def check() -> None:
        assert count_rows(container.write_engine(), "chats") == 1
        assert count_rows(container.write_engine(), "messages") == 0

    return check


# --- bodies that are not a JSON object -----------------------------------------------------


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"title": "x", "text": "x"', id="truncated"),
        pytest.param(b"{title: 'x', text: 'x'}", id="unquoted-keys"),
        pytest.param(b'{"title": "x", "text": "x",}', id="trailing-comma"),
        pytest.param(b"not json at all", id="prose"),
        pytest.param(b"", id="empty"),
    ],
)
def test_malformed_json_is_422(
    client: httpx.Client, chat: Json, nothing_stored: Callable[[], None], template: str, raw: bytes
) -> None:
    assert_validation_error(send_raw(client, body_path(template, chat), raw), "body")
    nothing_stored()


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'["x"]', id="list"),
        pytest.param(b'[{"title": "x", "text": "x"}]', id="list-of-object"),
        pytest.param(b'"x"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"true", id="bool"),
        pytest.param(b"null", id="null"),
    ],
)
def test_json_that_is_not_an_object_is_422(
    client: httpx.Client, chat: Json, nothing_stored: Callable[[], None], template: str, raw: bytes
) -> None:
    assert_validation_error(send_raw(client, body_path(template, chat), raw), "body")
    nothing_stored()


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        pytest.param("text/plain", b'{"title": "x", "text": "x"}', id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", b"title=x&text=x", id="form"),
        pytest.param("application/xml", b"<title>x</title>", id="xml"),
    ],
)
def test_a_body_that_is_not_json_is_a_client_error(
    client: httpx.Client,
    chat: Json,
    nothing_stored: Callable[[], None],
    template: str,
    content_type: str,
    raw: bytes,
) -> None:
    response = send_raw(client, body_path(template, chat), raw, content_type=content_type)
    assert_validation_error(response, "body")
    nothing_stored()


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"title": "caf\xe9", "text": "caf\xe9"}', id="latin-1"),
        pytest.param(b'{"title": "\xff\xfe", "text": "\xff\xfe"}', id="invalid-bytes"),
        pytest.param(b'{"title": "\xed\xa0\x80", "text": "\xed\xa0\x80"}', id="utf8-surrogate"),
    ],
)
def test_a_body_that_is_not_utf8_is_422(
    client: httpx.Client, chat: Json, nothing_stored: Callable[[], None], template: str, raw: bytes
) -> None:
    assert_validation_error(send_raw(client, body_path(template, chat), raw), "body")
    nothing_stored()


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-32"], ids=["utf-16-bom", "utf-16-le", "utf-32-bom"]
)
def test_json_in_another_unicode_encoding_is_422(
    client: httpx.Client,
    chat: Json,
    nothing_stored: Callable[[], None],
    template: str,
    encoding: str,
) -> None:
    """JSON exchanged between systems is UTF-8 (RFC 8259, section 8.1); nothing else is JSON."""
    raw = '{"title": "x", "text": "x"}'.encode(encoding)
    assert_validation_error(send_raw(client, body_path(template, chat), raw), "body")
    nothing_stored()


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"],
    ids=["no-content-type", "text-plain", "octet-stream", "form"],
)
def test_a_non_json_body_that_is_not_utf8_is_a_client_error(
    client: httpx.Client,
    chat: Json,
    nothing_stored: Callable[[], None],
    template: str,
    content_type: str | None,
) -> None:
    raw = b"title=\xff\xfe&text=\xff\xfe"
    response = send_raw(client, body_path(template, chat), raw, content_type=content_type)
    assert_validation_error(response, "body")
    nothing_stored()


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 30_000 + b"]" * 30_000, id="deeply-nested-list"),
        pytest.param(b'{"title": ' + b"9" * 5_000 + b', "text": 1}', id="5000-digit-number"),
    ],
)
def test_json_too_deep_or_too_long_to_parse_is_422(
    client: httpx.Client,
    chat: Json,
    nothing_stored: Callable[[], None],
    max_body_size: int,
    template: str,
    raw: bytes,
) -> None:
    """Valid JSON under the size limit that the server will not parse is still an invalid body."""
    assert len(raw) <= max_body_size
    assert_validation_error(send_raw(client, body_path(template, chat), raw), "body")
    nothing_stored()


# --- body size -----------------------------------------------------------------------------


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_of_exactly_the_maximum_is_accepted(
    client: httpx.Client, chat: Json, max_body_size: int, template: str, chunked: bool
) -> None:
    raw = padded_body(FIELD[template], max_body_size)
    response = send_raw(client, body_path(template, chat), chunks(raw) if chunked else raw)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("template", BODY_PATHS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("excess", [1, 64 * 1024], ids=["one-byte-over", "twice-the-maximum"])
def test_a_body_larger_than_the_maximum_is_413(
    client: httpx.Client,
    chat: Json,
    nothing_stored: Callable[[], None],
    max_body_size: int,
    template: str,
    chunked: bool,
    excess: int,
) -> None:
    raw = padded_body(FIELD[template], max_body_size + excess)
    response = send_raw(client, body_path(template, chat), chunks(raw) if chunked else raw)
    assert_detail_error(response, 413)
    nothing_stored()


def test_a_large_body_is_413_even_when_its_text_is_also_too_long(
    client: httpx.Client, chat: Json, max_body_size: int
) -> None:
    raw = b'{"text": "' + b"a" * max_body_size + b'"}'
    assert_detail_error(send_raw(client, body_path(BODY_PATHS[1], chat), raw), 413)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_delete_answered_413_deletes_nothing(
    client: httpx.Client, chat: Json, max_body_size: int, chunked: bool
) -> None:
    """The limit is enforced before routing, so even a DELETE is refused and changes nothing."""
    raw = b" " * (max_body_size + 1)
    path = f"/chats/{chat['id']}"

    response = send_raw(client, path, chunks(raw) if chunked else raw, method="DELETE")

    assert_detail_error(response, 413)
    assert client.get(path).status_code == 200, "answered 413, yet the chat was deleted"


# --- ids -----------------------------------------------------------------------------------

BEYOND_RANGE = ["99999999999999999999", str(2**63), str(2**64), "-99999999999999999999"]
NOT_POSITIVE = ["0", "-1", str(-(2**63))]


def id_requests(chat_id: str) -> list[tuple[str, str, Json | None]]:
    """The three operations on one chat id: (method, path, json body)."""
    return [
        ("GET", f"/chats/{chat_id}", None),
        ("DELETE", f"/chats/{chat_id}", None),
        ("POST", f"/chats/{chat_id}/messages/", {"text": "hello"}),
    ]


@pytest.mark.parametrize("operation", [0, 1, 2], ids=["get", "delete", "post-message"])
@pytest.mark.parametrize("chat_id", BEYOND_RANGE + NOT_POSITIVE)
def test_an_id_no_chat_can_have_is_404_or_422(
    client: httpx.Client, chat: Json, chat_id: str, operation: int
) -> None:
    method, path, body = id_requests(chat_id)[operation]

    response = client.request(method, path, json=body)

    assert_not_500(response)
    if response.status_code == 404:
        assert_detail_error(response, 404)
    else:
        assert_validation_error(response, "path", "chat_id")
    assert get_chat(client, chat["id"])["id"] == chat["id"]


@pytest.mark.parametrize("operation", [0, 1, 2], ids=["get", "delete", "post-message"])
def test_the_largest_64_bit_id_is_simply_missing(
    client: httpx.Client, chat: Json, operation: int
) -> None:
    method, path, body = id_requests(str(2**63 - 1))[operation]
    assert_detail_error(client.request(method, path, json=body), 404)


@pytest.mark.parametrize("operation", [0, 1, 2], ids=["get", "delete", "post-message"])
@pytest.mark.parametrize("chat_id", ["abc", "1.5", "1e3", "%20"])
def test_an_id_that_is_not_an_integer_is_422(
    client: httpx.Client, chat_id: str, operation: int
) -> None:
    create_chat(client)
    method, path, body = id_requests(chat_id)[operation]
    assert_validation_error(client.request(method, path, json=body), "path", "chat_id")


def test_unknown_path_is_a_404_in_the_detail_shape(client: httpx.Client) -> None:
    assert_detail_error(client.get("/nothing-here"), 404)


# --- integers in paths and query strings ----------------------------------------------------

# What pydantic's lax parsing would read as an integer but OpenAPI's integer does not allow
# (schemathesis found "\u00a03" accepted as chat 3).
LAX_SPELLINGS = ["\u00a01", " 1", "1 ", "+1", "1.0", "1_0", "\t1"]


@pytest.mark.parametrize("spelling", LAX_SPELLINGS)
def test_an_id_in_a_path_is_plain_decimal_digits(
    client: httpx.Client, chat: Json, spelling: str
) -> None:
    padded = quote(spelling.replace("1", str(chat["id"])))
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/chats/{padded}")
        assert response.status_code == 422, (method, padded, response.text)
        assert response.json()["detail"][0]["loc"] == ["path", "chat_id"]
    assert client.get(f"/chats/{chat['id']}").status_code == 200  # nothing was deleted


@pytest.mark.parametrize("spelling", LAX_SPELLINGS)
def test_a_limit_is_plain_decimal_digits(client: httpx.Client, chat: Json, spelling: str) -> None:
    for path in (f"/chats/{chat['id']}", "/chats/"):
        response = client.get(path, params={"limit": spelling.replace("1", "5")})
        assert response.status_code == 422, (path, spelling, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", "limit"]


# --- one 422 shape -------------------------------------------------------------------------

# The members of a 422's errors: FastAPI's validation list, without pydantic's `input` (which
# echoed the input back) and `url`.
ERROR_MEMBERS = {"type", "loc", "msg"}
CTX_VALUES = str | int | float | bool | None


def assert_one_422_shape(response: httpx.Response) -> list[Json]:
    """The 422 every invalid request gets, in standard JSON, with nothing echoed back."""
    errors = assert_validation_error(response)
    json.loads(response.text, parse_constant=refuse_non_standard)
    for error in errors:
        assert ERROR_MEMBERS <= set(error) <= ERROR_MEMBERS | {"ctx"}, error
        if "ctx" in error:
            assert isinstance(error["ctx"], dict), error
            assert error["ctx"], error
            assert all(isinstance(value, CTX_VALUES) for value in error["ctx"].values()), error
    return errors


def refuse_non_standard(constant: str) -> None:
    raise ValueError(f"not JSON: {constant}")


INVALID_REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # pydantic's own errors, with a ctx
    "title-of-a-wrong-type": ("POST", "/chats/", {"json": {"title": 5}}),
    "missing-field": ("POST", "/chats/{chat_id}/messages/", {"json": {}}),
    "limit-out-of-range": ("GET", "/chats/{chat_id}", {"params": {"limit": 0}}),
    "id-not-an-integer": ("GET", "/chats/abc", {}),
    "key-of-a-wrong-pattern": (
        "POST",
        "/chats/",
        {"json": {"title": "x"}, "headers": {"Idempotency-Key": "a b"}},
    ),
    # FastAPI's and ours for a body that is not JSON
    "json-syntax": ("POST", "/chats/", {"content": b'{"title": '}),
    "not-utf8": ("POST", "/chats/", {"content": b'{"title": "\xff"}'}),
    "nan": ("POST", "/chats/", {"content": b'{"title": NaN}'}),
    # the domain's InvalidInput
    "not-a-cursor": ("GET", "/chats/", {"params": {"cursor": "not-a-cursor"}}),
    "blank-title": ("POST", "/chats/", {"json": {"title": "   "}}),
    # events.py's own
    "last-event-id-before-after": (
        "GET",
        "/chats/{chat_id}/events",
        {"params": {"after": 0}, "headers": {"Last-Event-ID": "-1"}},
    ),
}


@pytest.mark.parametrize("name", list(INVALID_REQUESTS))
def test_every_422_has_one_shape(client: httpx.Client, chat: Json, name: str) -> None:
    method, template, options = INVALID_REQUESTS[name]
    if "content" in options:
        options = {**options, "headers": {"Content-Type": "application/json"}}

    response = client.request(method, template.format(chat_id=chat["id"]), **options)

    assert_one_422_shape(response)


def test_an_idempotency_key_reused_is_a_422_of_the_one_shape(
    client: httpx.Client, container: Container
) -> None:
    key = {"Idempotency-Key": "shape-1"}
    assert client.post("/chats/", json={"title": "first"}, headers=key).status_code == 201

    response = client.post("/chats/", json={"title": "second"}, headers=key)

    errors = assert_one_422_shape(response)
    assert errors[0]["loc"] == ["header", "idempotency-key"], errors
    assert count_rows(container.write_engine(), "chats") == 1


def test_pydantic_gives_its_context_json_safe(client: httpx.Client, chat: Json) -> None:
    response = client.get(f"/chats/{chat['id']}", params={"limit": 0})

    errors = assert_one_422_shape(response)
    assert errors == [
        {
            "type": "greater_than_equal",
            "loc": ["query", "limit"],
            "msg": "Input should be greater than or equal to 1",
            "ctx": {"ge": 1},
        }
    ]


@pytest.mark.parametrize(
    ("template", "field"),
    [("/chats/", "title"), ("/chats/{chat_id}/messages/", "text")],
)
def test_a_10_kb_invalid_input_is_not_echoed(
    client: httpx.Client, chat: Json, nothing_stored: Callable[[], None], template: str, field: str
) -> None:
    too_long = "too long " * 1200  # about 10 KB, over any field's maximum

    response = client.post(body_path(template, chat), json={field: too_long})

    assert_one_422_shape(response)
    assert len(response.content) < 1024, response.text
    assert "too long too long" not in response.text
    nothing_stored()
