"""The parameters solved by api/direct_params.py answer exactly as FastAPI's own handler does,
over generated requests: good and bad ids, limits, cursors, tokens, headers, bodies."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api import direct_params
from api.app import create_app
from api.routing import Utf8JsonRoute
from infrastructure.container import Container
from tests.api.helpers import Json
from tests.support.servers import app_of

# 150 generated requests a test, each on the module's app and client.
GENERATED = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# Headers that differ between any two answers, whoever solved the parameters.
PER_ANSWER = {"x-request-id", "date"}

NUMBERS = ["1", "0", "-1", "+1", " 1", "1.0", "1e3", "abc", "", "99999999999999999999", "٣"]
LIMITS = [None, "", "0", "1", "5", "20", "100", "101", "-3", "abc", " 5", "5.0", "1_0"]
TOKENS = [None, "", "nonsense", "0/0", "1/2/3", "x" * 300]
AUTHORIZATION = [None, "Bearer abc", "Basic abc", "Bearer", ""]


@pytest.fixture
def app(container: Container, client: httpx.Client) -> Iterator[FastAPI]:
    app = app_of(container)
    yield app
    app.state.direct_params = True


@pytest.fixture
def known(client: httpx.Client) -> Json:
    """Two chats with messages; a cursor of each kind and a write's token, as answered."""
    first = client.post("/chats/", json={"title": "first"}).json()
    client.post("/chats/", json={"title": "second"})
    token = None
    for n in range(7):
        posted = client.post(f"/chats/{first['id']}/messages/", json={"text": f"m{n}"})
        token = posted.headers.get("consistency-token")
    history = client.get(f"/chats/{first['id']}/messages/", params={"limit": 2}).json()
    listed = client.get("/chats/", params={"limit": 1}).json()
    return {
        "chat": str(first["id"]),
        "before": history["next_before"],
        "after": history["messages"][0]["seq"],
        "cursor": listed["next_cursor"],
        "token": token,
    }


def test_the_reads_and_the_post_are_planned_and_nothing_else() -> None:
    planned = {
        (method, route.path)
        for route in create_app(Container()).router.routes
        if isinstance(route, Utf8JsonRoute)  # the API's routes (not the docs pages')
        and direct_params.plan_of(route.dependant) is not None
        for method in route.methods or ()
    }
    reads = {"/chats/", "/chats/{chat_id}", "/chats/{chat_id}/messages/"}
    reading = {(method, path) for path in reads for method in ("GET", "HEAD")}
    assert planned == reading | {("POST", "/chats/{chat_id}/messages/")}


@GENERATED
@given(data=st.data())
def test_direct_and_fastapi_answer_alike(
    app: FastAPI, client: httpx.Client, known: Json, data: st.DataObject
) -> None:
    chat = data.draw(st.sampled_from([known["chat"], "424242", *NUMBERS]), label="chat")
    path = data.draw(
        st.sampled_from(["/chats/", f"/chats/{chat}", f"/chats/{chat}/messages/"]), label="path"
    )
    path = data.draw(st.sampled_from([path, path.rstrip("/")]), label="spelling") or "/"
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name, values in (
        ("limit", LIMITS),
        ("before", [None, known["before"], "garbage", *NUMBERS]),
        ("after", [None, str(known["after"]), "0", *NUMBERS]),
        ("cursor", [None, known["cursor"], "garbage"]),
        ("unknown", [None, "1"]),
    ):
        for _ in range(data.draw(st.integers(0, 2), label=f"{name} times")):
            value = data.draw(st.sampled_from(values), label=name)
            if value is not None:
                params.append((name, value))
    headers = {}
    for name, values in (
        ("Consistency-Token", [known["token"], *TOKENS]),
        ("Authorization", AUTHORIZATION),
    ):
        value = data.draw(st.sampled_from(values), label=name)
        if value is not None:
            headers[name] = value
    method = data.draw(st.sampled_from(["GET", "HEAD"]), label="method")

    answers = []
    for direct in (True, False):
        app.state.direct_params = direct
        answers.append(client.request(method, path, params=params, headers=headers))
    planned, fastapis = answers

    assert planned.status_code == fastapis.status_code
    assert planned.content == fastapis.content
    assert without(planned.headers, PER_ANSWER) == without(fastapis.headers, PER_ANSWER)


def without(headers: httpx.Headers, names: set[str]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.multi_items() if name not in names]


# What a post's body and its headers may be: (values that store a message, values that are
# refused, in each way FastAPI refuses).
CONTENT_TYPES: tuple[list[Any], list[Any]] = (
    ["application/json"],
    [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
        "Application/JSON",
        "text/plain",
        "",
        None,
    ],
)
TEXTS = (["hi", "  spaced  ", "x" * 5000, "emoji 🙂"], ["", "   ", "x" * 5001, "zero\u0000byte"])
AUTHORS = ([None, "ann"], ["", "no spaces please", "x" * 300])
EXTRA: tuple[list[Any], list[Any]] = ([None, "1"], [])
RAW_BODIES = [b"", b"{", b"[]", b"null", b'"text"', b'{"text": NaN}', b'{"text": "\xff"}']
RAW_BODIES.append(b"\xff\xfe")  # not UTF-8
IDEMPOTENCY_KEYS = ([None, "fresh"], ["", "bad key", "x" * 300])
PER_MESSAGE = {"location", "consistency-token", "content-length"}


@GENERATED
@given(data=st.data())
def test_direct_and_fastapi_post_alike(
    app: FastAPI, client: httpx.Client, known: Json, data: st.DataObject
) -> None:
    # Half the posts are good ones, each of the others bad in one or more ways.
    good = data.draw(st.booleans(), label="good")

    def draw(label: str, values: tuple[list[Any], list[Any]]) -> Any:
        return data.draw(st.sampled_from(values[0] if good else values[0] + values[1]), label)

    chat = draw("chat", ([known["chat"]], ["424242", *NUMBERS]))
    path = data.draw(st.sampled_from([f"/chats/{chat}/messages/", f"/chats/{chat}/messages"]))
    document = {"text": draw("text", TEXTS), "author": draw("author", AUTHORS)}
    document["extra"] = draw("extra", EXTRA)
    document = {name: value for name, value in document.items() if value is not None}
    if not good and data.draw(st.booleans(), label="without text"):
        del document["text"]
    content = json.dumps(document).encode()
    if not good and data.draw(st.booleans(), label="not that document"):
        content = data.draw(st.sampled_from(RAW_BODIES), label="raw body")
    headers = {}
    content_type = draw("Content-Type", CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    authorization = draw("Authorization", ([None], AUTHORIZATION))
    if authorization is not None:
        headers["Authorization"] = authorization
    key = draw("Idempotency-Key", IDEMPOTENCY_KEYS)

    answers = []
    for direct in (True, False):
        app.state.direct_params = direct
        if key is not None:  # a fresh key each time: the second is no replay of the first
            headers["Idempotency-Key"] = str(uuid.uuid4()) if key == "fresh" else key
        answers.append(client.post(path, content=content, headers=headers))
    planned, fastapis = answers
    event(f"answered {planned.status_code}")

    assert planned.status_code == fastapis.status_code
    if planned.status_code == 201:  # two messages: alike but for their ids, seqs and times
        stored = [answer.json() for answer in answers]
        assert stored[1]["seq"] == stored[0]["seq"] + 1
        for message in stored:
            for name in ("id", "seq", "created_at"):
                message.pop(name)
        assert stored[0] == stored[1]
    else:
        assert planned.content == fastapis.content
    different = PER_ANSWER | (PER_MESSAGE if planned.status_code == 201 else set())
    assert without(planned.headers, different) == without(fastapis.headers, different)
