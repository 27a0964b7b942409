"""JSON beyond RFC 8259 (NaN, Infinity, a number no float can hold): a 422 that is valid JSON.

Python's json reads `NaN`, `Infinity` and `-Infinity`, and `1e999999` as inf; echoed back,
they made a 422 body no strict parser (JavaScript's `JSON.parse`) can read, and an unknown
field holding one was accepted.
"""

import json
from typing import Any

import httpx
import pytest

from infrastructure.container import Container
from tests.api.helpers import Json, assert_validation_error, send_raw
from tests.support.database import count_rows

# Each operation that takes a body: its path, and a valid body with `{}` where a value goes.
OPERATIONS = {
    "create-chat": ("POST", "/chats/", '{{"title": {}}}'),
    "post-message": ("POST", "/chats/{chat_id}/messages/", '{{"text": {}}}'),
    "put-member": ("PUT", "/chats/{chat_id}/members/bob", '{{"role": {}}}'),
}
NON_STANDARD = ["NaN", "Infinity", "-Infinity", "1e999999", "-1e999999", "1.5E+400"]


def strict_loads(text: str) -> Any:
    """JSON as a strict parser reads it: no NaN or Infinity, no number beyond a double."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    def finite(number: str) -> float:
        value = float(number)
        if value in (float("inf"), float("-inf")):
            raise ValueError(f"not a double: {number}")
        return value

    return json.loads(text, parse_constant=refuse, parse_float=finite)


def stored(container: Container) -> list[int]:
    """How many chats, messages and members there are: a refused body changes none."""
    engine = container.write_engine()
    return [count_rows(engine, table) for table in ("chats", "messages", "chat_members")]


def send(client: httpx.Client, operation: str, chat: Json, body: str) -> httpx.Response:
    method, template, _ = OPERATIONS[operation]
    return send_raw(client, template.format(chat_id=chat["id"]), body.encode(), method=method)


def assert_json_invalid_at(response: httpx.Response, body: str, token: str) -> None:
    """A 422 whose body a strict parser reads, locating the refused token in the body."""
    assert response.status_code == 422, response.text
    strict_loads(response.text)
    errors = assert_validation_error(response, "body")
    assert [error["type"] for error in errors] == ["json_invalid"], errors
    # The last occurrence: in the "after-text" bodies the token's text also appears in a string.
    assert errors[0]["loc"] == ["body", body.rindex(token)], (errors, body)


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("token", NON_STANDARD)
def test_a_non_standard_value_is_a_json_422(
    client: httpx.Client, container: Container, chat: Json, operation: str, token: str
) -> None:
    body = OPERATIONS[operation][2].format(token)
    before = stored(container)

    response = send(client, operation, chat, body)

    assert_json_invalid_at(response, body, token)
    assert stored(container) == before


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize(
    ("extra", "token"),
    [
        pytest.param('"extra": NaN', "NaN", id="unknown-field"),
        pytest.param('"extra": [1, {"deep": [2.5, -Infinity]}]', "-Infinity", id="nested"),
        pytest.param('"NaN": "NaN", "more": NaN', "NaN", id="after-text"),
        pytest.param('"x": "[1e999999]", "more": [1e999999]', "1e999999", id="after-text-too"),
    ],
)
def test_a_non_standard_value_anywhere_in_a_valid_body_is_a_json_422(
    client: httpx.Client,
    container: Container,
    chat: Json,
    operation: str,
    extra: str,
    token: str,
) -> None:
    valid = {"create-chat": '"Standup"', "post-message": '"ok"', "put-member": '"member"'}
    body = OPERATIONS[operation][2].format(valid[operation])
    body = f"{body[:-1]}, {extra}}}"
    before = stored(container)

    response = send(client, operation, chat, body)

    assert_json_invalid_at(response, body, token)
    assert stored(container) == before


@pytest.mark.parametrize(
    "number", ["1e308", "-1.7976931348623157e308", "1e-999999", "0.1", "12345678901234567890"]
)
def test_numbers_a_double_holds_are_still_json(
    client: httpx.Client, container: Container, chat: Json, number: str
) -> None:
    """Standard numbers, however large or small, are read; the body is refused only for its
    schema (an unknown field is ignored, a number is no title)."""
    ignored = send(client, "post-message", chat, f'{{"text": "ok", "extra": {number}}}')
    assert ignored.status_code == 201, ignored.text

    wrong_type = send(client, "create-chat", chat, f'{{"title": {number}}}')
    errors = assert_validation_error(wrong_type, "body", "title")
    assert errors[0]["type"] == "string_type", errors
    strict_loads(wrong_type.text)
