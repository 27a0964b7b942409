"""The reads' parameters solved by api/direct_params.py answer exactly as FastAPI's own
handler does, over generated requests: good and bad ids, limits, cursors, tokens, headers."""

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import direct_params
from api.app import create_app
from api.routing import Utf8JsonRoute
from infrastructure.container import Container
from tests.api.helpers import Json
from tests.support.servers import app_of

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


def test_the_reads_are_planned_and_nothing_else() -> None:
    planned = {
        (method, route.path)
        for route in create_app(Container()).router.routes
        if isinstance(route, Utf8JsonRoute)  # the API's routes (not the docs pages')
        and route.body_field is None
        and direct_params.plan_of(route.dependant) is not None
        for method in route.methods or ()
    }
    reads = {"/chats/", "/chats/{chat_id}", "/chats/{chat_id}/messages/"}
    assert planned == {(method, path) for path in reads for method in ("GET", "HEAD")}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
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
