"""Small helpers shared by the API tests: requests that must succeed, and error-shape checks."""

from datetime import datetime, timedelta
from typing import Any

import httpx

Json = dict[str, Any]


def create_chat(client: httpx.Client, title: str = "Weekend plans") -> Json:
    response = client.post("/chats/", json={"title": title})
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def post_message(client: httpx.Client, chat_id: int, text: str = "hello") -> Json:
    response = client.post(f"/chats/{chat_id}/messages/", json={"text": text})
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def post_messages(client: httpx.Client, chat_id: int, count: int) -> list[Json]:
    """Post `message 1` .. `message <count>` in order and return what each POST answered."""
    return [post_message(client, chat_id, f"message {n}") for n in range(1, count + 1)]


def get_chat(client: httpx.Client, chat_id: int, **params: Any) -> Json:
    response = client.get(f"/chats/{chat_id}", params=params)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def missing_chat_id(chat: Json) -> int:
    """An id no chat has: a test starts from empty tables, with this one chat in them."""
    return int(chat["id"]) + 1_000_000


def send_raw(
    client: httpx.Client,
    path: str,
    content: Any,
    content_type: str | None = "application/json",
    method: str = "POST",
) -> httpx.Response:
    """Send a body as given (bytes, or an iterator of bytes for a chunked body)."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    return client.request(method, path, content=content, headers=headers)


def assert_utc_timestamp(value: object) -> datetime:
    """An ISO-8601 timestamp that carries an offset, and that offset is UTC."""
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def assert_is_id(value: object) -> int:
    assert isinstance(value, int), value
    assert not isinstance(value, bool), value
    return value


def assert_json(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()


def assert_detail_error(response: httpx.Response, status: int) -> str:
    """FastAPI's `{"detail": "..."}` error, with the given status."""
    assert response.status_code == status, response.text
    body = assert_json(response)
    assert isinstance(body, dict), body
    assert set(body) == {"detail"}, body
    assert isinstance(body["detail"], str), body
    assert body["detail"], body
    return body["detail"]


def assert_validation_error(response: httpx.Response, *loc: str | int) -> list[Json]:
    """FastAPI's 422 list; with `loc`, one of the errors' locations starts with it."""
    assert response.status_code == 422, response.text
    body = assert_json(response)
    assert isinstance(body, dict), body
    assert set(body) == {"detail"}, body
    errors = body["detail"]
    assert isinstance(errors, list), body
    assert errors, body
    for error in errors:
        assert isinstance(error, dict), error
        assert isinstance(error.get("loc"), list), error
        assert error["loc"], error
        assert isinstance(error.get("msg"), str), error
        assert error["msg"], error
        assert isinstance(error.get("type"), str), error
        assert error["type"], error
    if loc:
        assert any(tuple(error["loc"][: len(loc)]) == loc for error in errors), errors
    return errors


def assert_not_500(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text}"


def resolve(spec: Json, schema: Json) -> Json:
    """Follow `$ref`s in an OpenAPI document to the schema they name."""
    while "$ref" in schema:
        prefix = "#/components/schemas/"
        reference = schema["$ref"]
        assert reference.startswith(prefix), reference
        schema = spec["components"]["schemas"][reference.removeprefix(prefix)]
    return schema


def string_schema(schema: Json) -> Json:
    """The string branch of an optional string's schema."""
    branches = schema.get("anyOf", [schema])
    strings = [branch for branch in branches if branch.get("type") == "string"]
    assert len(strings) == 1, schema
    assert {branch.get("type") for branch in branches} <= {"string", "null"}, schema
    string: Json = strings[0]
    return string
