"""The OpenAPI document: every operation of the contract, every status it can return, in a
form generated clients can use."""

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx_sse
import pytest
import schemathesis
from jsonschema_rs import Draft202012Validator

from domain.rules import MAX_ID
from tests.api.helpers import Json, create_chat, post_message, resolve

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
# 401: AUTH_MODE=required and no good credential; 403: a member doing an owner's part;
# 413: a body too large, which no GET takes.
STATUSES = {
    CREATE: {"201", "401", "413", "422", "503"},
    POST_MESSAGE: {"201", "401", "404", "413", "422", "503"},
    GET: {"200", "401", "404", "422", "503"},
    DELETE: {"204", "401", "403", "404", "413", "422", "503"},
    LIST: {"200", "401", "422", "503"},
    HISTORY: {"200", "401", "404", "409", "422", "503"},  # 409: `after` past the end
    GET_MESSAGE: {"200", "401", "404", "422", "503"},
    EVENTS: {"200", "401", "404", "409", "422", "429", "503"},  # 429, 503: stream caps
    TICKET: {"201", "401", "404", "413", "422", "503"},
    MEMBERS: {"200", "401", "404", "422", "503"},
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


def deref(spec: Json, declared: Json) -> Json:
    """What a `$ref` to the document's components (a response, a header, ...) names."""
    while "$ref" in declared:
        reference = declared["$ref"]
        assert reference.startswith("#/components/"), reference
        kind, name = reference.removeprefix("#/components/").split("/")
        declared = spec["components"][kind][name]
    return declared


def responses_of(spec: Json, declared: Json) -> dict[str, Json]:
    """An operation's responses, each as its component declares it where it is a `$ref`."""
    return {status: deref(spec, response) for status, response in declared["responses"].items()}


def json_schema(spec: Json, response: Json) -> Json:
    """The resolved application/json schema of a declared response or request body."""
    response = deref(spec, response)
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
    headers = responses_of(spec, operation(spec, key))["503"].get("headers", {})
    retry_after = deref(spec, headers["Retry-After"])
    assert retry_after["schema"]["type"] == "integer"
    assert retry_after["required"] is True


def test_a_get_declares_no_413(spec: Json) -> None:
    """A GET takes no body, so none is ever too large: a generated client has no 413 to
    handle (other operations may be sent one: a DELETE answers 413 to a body too large)."""
    for path, method, declared in all_operations(spec):
        if method == "get":
            assert "413" not in declared["responses"], path
        else:
            assert "413" in declared["responses"], (method, path)


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
    # Each event (OpenAPI 3.2), and the stream as a whole, read as an array of them.
    assert stream["itemSchema"] == {"$ref": "#/components/schemas/ChatEvent"}
    assert stream["schema"] == {"type": "array", "items": stream["itemSchema"]}
    assert [event["event"] for event in stream["example"]] == ["message.posted", "chat.deleted"]
    for field in ("message.posted", "chat.deleted", "`id`", "`data`", "seq", "retry"):
        assert field in success["description"], field
    assert "event: message.posted" in success["description"]  # as sent
    names = {(p["in"], p["name"]) for p in operation(spec, EVENTS)["parameters"]}
    assert names == {("path", "chat_id"), ("query", "after"), ("header", "last-event-id")}


# The events of a stream, by their `event` field: their schema, and that of their data.
EVENTS_DECLARED = {
    "message.posted": ("MessagePostedEvent", "MessageResponse"),
    "chat.deleted": ("ChatDeletedEvent", "ChatDeletedData"),
    "member.added": ("MemberAddedEvent", "MemberChangeData"),
    "member.updated": ("MemberUpdatedEvent", "MemberChangeData"),
    "member.removed": ("MemberRemovedEvent", "MemberChangeData"),
}


def test_each_event_has_a_schema_told_apart_by_its_event_field(spec: Json) -> None:
    schemas = spec["components"]["schemas"]
    union = schemas["ChatEvent"]
    refs = {name: f"#/components/schemas/{schema}" for name, (schema, _) in EVENTS_DECLARED.items()}
    assert union["discriminator"] == {"propertyName": "event", "mapping": refs}
    assert union["oneOf"] == [{"$ref": ref} for ref in refs.values()]
    for name, (schema_name, data_name) in EVENTS_DECLARED.items():
        schema = schemas[schema_name]
        properties = schema["properties"]
        assert properties["event"]["const"] == name
        # The data is JSON text, of a schema the document declares.
        data = properties["data"]
        assert (data["type"], data["contentMediaType"]) == ("string", "application/json")
        assert data["contentSchema"] == {"$ref": f"#/components/schemas/{data_name}"}
        assert data_name in schemas
        assert properties["id"]["type"] == "string"
        assert properties["retry"]["type"] == "integer"
        assert {"event", "data"} <= set(schema["required"])
    # A message's event always has its seq as its id.
    assert "id" in schemas["MessagePostedEvent"]["required"]
    assert schemas["ChatDeletedData"]["required"] == ["chat_id"]
    assert set(schemas["MemberChangeData"]["required"]) == {"chat_id", "user_id", "role"}


def schema_validator(spec: Json, schema: Json) -> Draft202012Validator:
    """`schema` checked as the document states it, its `$ref`s to components included."""
    return Draft202012Validator({**schema, "components": spec["components"]})


def test_the_events_a_stream_sends_are_those_declared(
    spec: Json, client: httpx.Client, server_url: str
) -> None:
    """Each kind of event, read from a stream as any SSE client reads it, is valid against the
    document's ChatEvent, and its data against the schema its `contentSchema` names."""
    chat = create_chat(client)
    chat_id = chat["id"]
    owner = client.put(f"/chats/{chat_id}/members/ann", json={"role": "owner"})
    assert owner.status_code == 201, owner.text  # so that bob may leave
    members = f"/chats/{chat_id}/members/bob"
    events = schema_validator(spec, {"$ref": "#/components/schemas/ChatEvent"})
    mapping = spec["components"]["schemas"]["ChatEvent"]["discriminator"]["mapping"]
    received: list[Json] = []
    with httpx_sse.connect_sse(client, "GET", f"/chats/{chat_id}/events") as source:
        stream = source.iter_sse()
        post_message(client, chat_id)
        for step, role in (("added", "member"), ("updated", "owner")):
            assert client.put(members, json={"role": role}).status_code in (200, 201), step
        assert client.delete(members).status_code == 204
        kinds = ["message.posted", "member.added", "member.updated", "member.removed"]
        received += [event_fields(next(stream)) for _ in kinds]
        assert client.delete(f"/chats/{chat_id}").status_code == 204
        received += [event_fields(event) for event in stream]
    assert [event["event"] for event in received] == [*kinds, "chat.deleted"]
    for event in received:
        events.validate(event)
        declared = deref(spec, {"$ref": mapping[event["event"]]})
        data = declared["properties"]["data"]["contentSchema"]
        schema_validator(spec, data).validate(json.loads(event["data"]))


def event_fields(sse: httpx_sse.ServerSentEvent) -> Json:
    """An event as OpenAPI 3.2 models it: its fields, those it has."""
    fields: Json = {"event": sse.event, "data": sse.data}
    if sse.id:
        fields["id"] = sse.id
    if sse.retry is not None:
        fields["retry"] = sse.retry
    return fields


def test_delete_declares_204_without_a_body(spec: Json) -> None:
    assert not operation(spec, DELETE)["responses"]["204"].get("content")


def test_every_success_but_a_204_declares_its_body(spec: Json) -> None:
    """A success without a declared body is typed `Any` by generated clients: each one that
    has a body says what it is (a member added, 201, as much as one changed, 200)."""
    for path, method, declared in all_operations(spec):
        for status, response in declared["responses"].items():
            if status.startswith("2"):
                has_body = bool(response.get("content"))
                assert has_body == (status != "204"), (method, path, status)


def walk(node: object) -> Iterator[Json]:
    """Every object of a JSON document, nested ones included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_bounds_are_json_schema_keywords(spec: Json) -> None:
    """pydantic's `ge`/`le` reach the document as JSON Schema's minimum/maximum, where tools
    read them, never under their own names (which they ignore, losing the bound)."""
    for key in (HISTORY, EVENTS):
        after = parameter(operation(spec, key), "after")["schema"]
        (integer,) = [branch for branch in after.get("anyOf", [after]) if "minimum" in branch]
        assert (integer["minimum"], integer["maximum"]) == (0, MAX_ID), key
    for node in walk(spec["paths"]):
        for keyword in ("ge", "le", "gt", "lt"):
            schema_like = "type" in node or "anyOf" in node
            assert not (schema_like and keyword in node), node


def test_every_parameter_describes_itself_in_its_schema_too(spec: Json) -> None:
    """Generators read a parameter's description from its schema (openapi-python-client's
    docstrings do): the headers too, whose schemas are written by hand."""
    for path, method, declared in all_operations(spec):
        for param in declared.get("parameters", []):
            where = (method, path, param["name"])
            assert param["description"], where
            assert param["schema"]["description"] == param["description"], where


def test_shared_responses_and_headers_are_components(spec: Json) -> None:
    """Declared once, named by `$ref`: a generator makes one type of each, not one per use."""
    shared = {"401", "403", "404", "409", "413"}
    for path, method, declared in all_operations(spec):
        for status, response in declared["responses"].items():
            where = (method, path, status)
            if status in shared or (status == "503" and (path, method) != EVENTS):
                assert set(response) == {"$ref"}, where  # its own description, not FastAPI's
            for header in response.get("headers", {}).values():
                assert set(header) == {"$ref"}, where
    components = spec["components"]
    assert {"Location", "Idempotent-Replayed", "Consistency-Token", "Retry-After"} <= set(
        components["headers"]
    )
    for name, response in components["responses"].items():
        assert response["description"], name
        assert json_schema(spec, response)["properties"]["detail"]["type"] == "string", name


def test_the_validation_error_types_what_422s_send(spec: Json) -> None:
    """`detail` always there (a generated client indexes it as it is), each error an open
    `ctx` when present, and nothing the 422s do not send (no `input`, no `url`)."""
    schemas = spec["components"]["schemas"]
    body = schemas["HTTPValidationError"]
    assert body["required"] == ["detail"]
    error = resolve(spec, body["properties"]["detail"]["items"])
    assert set(error["properties"]) == {"type", "loc", "msg", "ctx"}
    assert set(error["required"]) == {"type", "loc", "msg"}
    assert error["properties"]["ctx"]["type"] == "object"
    assert error["properties"]["ctx"]["additionalProperties"] is True
    assert "default" not in error["properties"]["ctx"]


def test_a_replayed_create_says_what_it_may_name(spec: Json) -> None:
    """A 201 replayed for its Idempotency-Key repeats the first answer, which may name a chat
    deleted since: documented, so that no client (nor Schemathesis) reads it as a bug."""
    for key in (CREATE, POST_MESSAGE):
        assert "deleted since" in " ".join(operation(spec, key)["description"].split()), key
    replayed = spec["components"]["headers"]["Idempotent-Replayed"]
    assert "deleted since" in replayed["description"]


def test_the_description_states_what_clients_rely_on(spec: Json) -> None:
    description = spec["info"]["description"]
    for words in (
        '{"detail": "..."}',
        "Retry-After",
        "Idempotency-Key",
        "next_before",
        "after",
        "Last-Event-ID",
        "Consistency-Token",
        "AUTH_MODE=required",
        "Authorization: Bearer",
        "ticket",
    ):
        assert words in description, words


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


def test_the_document_is_valid_openapi_3_1_but_for_the_streams_item_schema(spec: Json) -> None:
    """Valid against OpenAPI 3.1's own schema, once the event stream's `itemSchema` is taken
    out: OpenAPI 3.2's, which FastAPI also writes into its 3.1 documents for its streams."""
    assert spec["openapi"] == "3.1.0"
    document = copy.deepcopy(spec)
    stream = document["paths"][EVENTS[0]][EVENTS[1]]["responses"]["200"]["content"]
    del stream["text/event-stream"]["itemSchema"]
    schemathesis.openapi.from_dict(document).validate()


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
        for status, response in responses_of(spec, declared).items():
            assert response.get("description"), (where, status)
            if status.startswith("2") and response.get("content"):
                assert has_example(spec, response["content"]), (where, status)


def test_every_declared_response_body_has_a_schema(spec: Json) -> None:
    for path, method, declared in all_operations(spec):
        for status, response in responses_of(spec, declared).items():
            for media in response.get("content", {}).values():
                assert resolve(spec, media.get("schema", {})), (method, path, status)


def test_the_probes_are_declared(spec: Json) -> None:
    live = operation(spec, ("/health/live", "get"))
    ready = operation(spec, ("/health/ready", "get"))
    assert (live["operationId"], ready["operationId"]) == ("getLiveness", "getReadiness")
    assert set(live["responses"]) == {"200"}
    assert {"200", "503"} <= set(ready["responses"])
    retry_after = responses_of(spec, ready)["503"]["headers"]["Retry-After"]
    assert deref(spec, retry_after)["schema"]["type"] == "integer"
