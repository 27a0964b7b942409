"""The OpenAPI document: every operation of the contract, every status it can return."""

from typing import Any

import httpx
import pytest

from tests.api.helpers import Json, resolve

CREATE = ("/chats/", "post")
POST_MESSAGE = ("/chats/{chat_id}/messages/", "post")
GET = ("/chats/{chat_id}", "get")
DELETE = ("/chats/{chat_id}", "delete")
LIST = ("/chats/", "get")
HISTORY = ("/chats/{chat_id}/messages/", "get")
GET_MESSAGE = ("/chats/{chat_id}/messages/{message_id}", "get")
EVENTS = ("/chats/{chat_id}/events", "get")
TICKET = ("/chats/{chat_id}/events/tickets", "post")
MEMBERS = ("/chats/{chat_id}/members/", "get")
PUT_MEMBER = ("/chats/{chat_id}/members/{user_id}", "put")
REMOVE_MEMBER = ("/chats/{chat_id}/members/{user_id}", "delete")

# Every status each operation can answer with, from the contract.
# 401: AUTH_MODE=required and no good credential; 403: a member doing an owner's part.
STATUSES = {
    CREATE: {"201", "401", "413", "422", "503"},
    POST_MESSAGE: {"201", "401", "404", "413", "422", "503"},
    GET: {"200", "401", "404", "413", "422", "503"},
    DELETE: {"204", "401", "403", "404", "413", "422", "503"},
    LIST: {"200", "401", "413", "422", "503"},
    HISTORY: {"200", "401", "404", "409", "413", "422", "503"},  # 409: `after` past the end
    GET_MESSAGE: {"200", "401", "404", "413", "422", "503"},
    EVENTS: {"200", "401", "404", "409", "413", "422", "429", "503"},  # 429, 503: stream caps
    TICKET: {"201", "401", "404", "413", "422", "503"},
    MEMBERS: {"200", "401", "404", "413", "422", "503"},
    PUT_MEMBER: {"200", "201", "401", "403", "404", "409", "413", "422", "503"},
    REMOVE_MEMBER: {"204", "401", "403", "404", "409", "413", "422", "503"},
}
SUCCESS_FIELDS = {
    CREATE: {"id", "title", "created_at"},
    POST_MESSAGE: {"id", "chat_id", "seq", "text", "created_at", "author"},
    GET: {"id", "title", "created_at", "messages"},
    GET_MESSAGE: {"id", "chat_id", "seq", "text", "created_at", "author"},
}
OPERATIONS = list(STATUSES)


def operation_id(operation: tuple[str, str]) -> str:
    return f"{operation[1].upper()} {operation[0]}"


def json_schema(spec: Json, response: Json) -> Json:
    """The resolved application/json schema of a declared response or request body."""
    assert set(response.get("content", {})) == {"application/json"}, response
    schema: Any = response["content"]["application/json"].get("schema")
    assert isinstance(schema, dict), response
    return resolve(spec, schema)


def operation(spec: Json, key: tuple[str, str]) -> Json:
    path, method = key
    assert path in spec["paths"], sorted(spec["paths"])
    assert method in spec["paths"][path], sorted(spec["paths"][path])
    found: Json = spec["paths"][path][method]
    return found


def parameter(declared: Json, name: str) -> Json:
    matches = [p for p in declared.get("parameters", []) if p["name"] == name]
    assert len(matches) == 1, declared.get("parameters")
    found: Json = matches[0]
    return found


@pytest.mark.parametrize("key", OPERATIONS, ids=operation_id)
def test_every_status_an_operation_can_return_is_declared(spec: Json, key: tuple[str, str]) -> None:
    declared = set(operation(spec, key)["responses"])
    assert STATUSES[key] <= declared


@pytest.mark.parametrize("key", OPERATIONS, ids=operation_id)
def test_error_statuses_declare_their_schema(spec: Json, key: tuple[str, str]) -> None:
    responses = operation(spec, key)["responses"]
    for status in STATUSES[key] & {"401", "403", "404", "409", "413", "429", "503"}:
        schema = json_schema(spec, responses[status])
        assert schema["properties"]["detail"]["type"] == "string", (status, schema)
        assert "detail" in schema.get("required", []), (status, schema)
    validation = json_schema(spec, responses["422"])
    assert validation["properties"]["detail"]["type"] == "array"
    item = resolve(spec, validation["properties"]["detail"]["items"])
    assert {"loc", "msg", "type"} <= set(item["required"])


@pytest.mark.parametrize("key", OPERATIONS, ids=operation_id)
def test_503_declares_retry_after(spec: Json, key: tuple[str, str]) -> None:
    headers = operation(spec, key)["responses"]["503"].get("headers", {})
    assert headers["Retry-After"]["schema"]["type"] == "integer"


@pytest.mark.parametrize("key", list(SUCCESS_FIELDS), ids=operation_id)
def test_success_declares_the_resource_schema(spec: Json, key: tuple[str, str]) -> None:
    responses = operation(spec, key)["responses"]
    success = "200" if key[1] == "get" else "201"
    schema = json_schema(spec, responses[success])
    assert SUCCESS_FIELDS[key] <= set(schema["required"])
    assert SUCCESS_FIELDS[key] <= set(schema["properties"])
    assert schema["properties"]["id"]["type"] == "integer"
    assert schema["properties"]["created_at"]["format"] == "date-time"


def test_chat_detail_declares_its_messages(spec: Json) -> None:
    schema = json_schema(spec, operation(spec, GET)["responses"]["200"])
    messages = schema["properties"]["messages"]
    assert messages["type"] == "array"
    item = resolve(spec, messages["items"])
    assert {"id", "chat_id", "seq", "text", "created_at", "author"} <= set(item["required"])


def test_the_event_stream_declares_its_events(spec: Json) -> None:
    success = operation(spec, EVENTS)["responses"]["200"]
    assert set(success["content"]) == {"text/event-stream"}
    stream = success["content"]["text/event-stream"]
    assert stream["schema"]["type"] == "string"
    for field in ("message.posted", "chat.deleted", "`id`", "`data`", "seq", "retry"):
        assert field in success["description"], field
    assert "event: message.posted" in stream["example"]
    assert "event: chat.deleted" in stream["example"]
    names = {(p["in"], p["name"]) for p in operation(spec, EVENTS)["parameters"]}
    assert names == {("path", "chat_id"), ("query", "after"), ("header", "last-event-id")}


def test_delete_declares_204_without_a_body(spec: Json) -> None:
    assert not operation(spec, DELETE)["responses"]["204"].get("content")


@pytest.mark.parametrize(
    ("key", "field", "max_length"), [(CREATE, "title", None), (POST_MESSAGE, "text", 5000)]
)
def test_request_bodies_are_json_objects_with_their_field(
    spec: Json, key: tuple[str, str], field: str, max_length: int | None
) -> None:
    body = operation(spec, key)["requestBody"]
    assert body["required"] is True
    schema = json_schema(spec, body)
    assert schema["type"] == "object"
    assert schema["required"] == [field]
    declared = schema["properties"][field]
    assert declared["type"] == "string"
    assert declared["minLength"] == 1
    assert declared.get("maxLength") == max_length


def test_limit_is_declared_as_documented(spec: Json) -> None:
    limit = parameter(operation(spec, GET), "limit")
    assert limit["in"] == "query"
    assert limit.get("required", False) is False
    assert limit["schema"]["type"] == "integer"
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    assert limit["schema"]["default"] == 20


@pytest.mark.parametrize("key", [POST_MESSAGE, GET, DELETE], ids=operation_id)
def test_chat_id_is_an_integer_path_parameter(spec: Json, key: tuple[str, str]) -> None:
    chat_id = parameter(operation(spec, key), "chat_id")
    assert chat_id["in"] == "path"
    assert chat_id["required"] is True
    assert chat_id["schema"]["type"] == "integer"


def test_operation_ids_are_unique(spec: Json) -> None:
    ids = [
        declared["operationId"]
        for methods in spec["paths"].values()
        for declared in methods.values()
        if isinstance(declared, dict) and "operationId" in declared
    ]
    assert len(ids) == len(set(ids)) >= len(OPERATIONS)


def test_docs_page_answers(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def all_operations(spec: Json) -> list[tuple[str, str, Json]]:
    return [
        (path, method, declared)
        for path, methods in spec["paths"].items()
        for method, declared in methods.items()
    ]


def has_example(spec: Json, content: Json) -> bool:
    """An example on each media type, or on the schema it refers to."""
    assert content, "no media type"
    for media in content.values():
        if "example" in media or "examples" in media:
            continue
        if not resolve(spec, media.get("schema", {})).get("examples"):
            return False
    return True


def test_every_operation_has_a_summary_a_description_and_examples(spec: Json) -> None:
    operations = all_operations(spec)
    assert len(operations) == len(OPERATIONS) + 2  # the chat operations and the two probes
    for path, method, declared in operations:
        where = f"{method.upper()} {path}"
        assert declared.get("summary"), where
        assert declared.get("description"), where
        for param in declared.get("parameters", []):
            schema = param["schema"]
            assert param.get("examples") or schema.get("examples") or "default" in schema, (
                where,
                param,
            )
        if "requestBody" in declared:
            assert has_example(spec, declared["requestBody"]["content"]), where
        for status, response in declared["responses"].items():
            assert response.get("description"), (where, status)
            if status.startswith("2") and response.get("content"):
                assert has_example(spec, response["content"]), (where, status)


def test_every_declared_response_body_has_a_schema(spec: Json) -> None:
    for path, method, declared in all_operations(spec):
        for status, response in declared["responses"].items():
            for media in response.get("content", {}).values():
                assert resolve(spec, media.get("schema", {})), (method, path, status)


def test_the_probes_are_declared(spec: Json) -> None:
    live = operation(spec, ("/health/live", "get"))
    ready = operation(spec, ("/health/ready", "get"))
    assert set(live["responses"]) == {"200"}
    assert {"200", "503"} <= set(ready["responses"])
    assert ready["responses"]["503"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
