"""One JSON log line per request, and the request id that ties it to the response."""

import json
import logging
import re
import secrets
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.request_log import request_line
from tests.api.helpers import Json

LOGGER = "chatapi.requests"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def logged_requests(caplog: pytest.LogCaptureFixture) -> list[Json]:
    lines: list[Json] = [
        json.loads(record.getMessage()) for record in caplog.records if record.name == LOGGER
    ]
    return lines


def logged_request(caplog: pytest.LogCaptureFixture, request_id: str) -> Json:
    # The server logs once it has sent the response: the client may have it a moment before.
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in logged_requests(caplog) if line["request_id"] == request_id]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(lines) == 1, logged_requests(caplog)
    return lines[0]


@pytest.fixture(autouse=True)
def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)


def test_a_request_id_is_generated_and_returned(client: httpx.Client) -> None:
    first = client.get("/health/live").headers["x-request-id"]
    second = client.get("/health/live").headers["x-request-id"]
    assert GENERATED_ID.fullmatch(first), first
    assert GENERATED_ID.fullmatch(second), second
    assert first != second


def test_the_clients_request_id_is_kept(client: httpx.Client) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": "edge-7f3a:42"})
    assert response.headers["x-request-id"] == "edge-7f3a:42"


@pytest.mark.parametrize(
    "given",
    ["x" * 129, "two words", "line\tbreak", '{"forged": 1}', ""],
    ids=["too-long", "space", "tab", "json", "empty"],
)
def test_an_unsafe_request_id_is_replaced(client: httpx.Client, given: str) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": given})
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def test_the_server_request_id_is_the_servers_own_whatever_the_client_sends(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A client may send another request's id: the line still has one no client chose."""
    first = client.get("/health/live", headers={"X-Request-ID": "reused-id"})
    second = client.get("/health/live", headers={"X-Request-ID": "reused-id"})
    assert first.headers["x-request-id"] == second.headers["x-request-id"] == "reused-id"

    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in logged_requests(caplog) if line["request_id"] == "reused-id"]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    servers = [line["server_request_id"] for line in lines]
    assert len(servers) == 2, lines
    assert all(GENERATED_ID.fullmatch(server) for server in servers), servers
    assert servers[0] != servers[1]


def test_without_a_clients_id_both_are_the_servers(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get("/health/live")
    generated = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(generated), generated
    assert logged_request(caplog, generated)["server_request_id"] == generated


@pytest.mark.parametrize(
    "forged",
    ['"}, {"request_id": "x', "ok INFO a forged line", "x" * 129],
    ids=["json", "spaces", "too-long"],
)
def test_an_unsafe_request_id_never_reaches_the_line(
    client: httpx.Client, caplog: pytest.LogCaptureFixture, forged: str
) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": forged})
    line = logged_request(caplog, response.headers["x-request-id"])
    assert line["request_id"] == line["server_request_id"]
    assert forged not in json.dumps(line)


def test_the_line_names_the_route_not_the_url(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get("/chats/123456?limit=5", headers={"X-Request-ID": "find-me"})
    assert response.status_code == 404
    line = logged_request(caplog, "find-me")
    assert set(line) == {
        "request_id",
        "server_request_id",
        "method",
        "path",
        "status",
        "duration_ms",
    }
    assert (line["method"], line["path"], line["status"]) == ("GET", "/chats/{chat_id}", 404)
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0


def test_every_outcome_is_logged(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    created = client.post("/chats/", json={"title": "logged"}, headers={"X-Request-ID": "ok"})
    assert created.status_code == 201
    invalid = client.post("/chats/", json={"title": " "}, headers={"X-Request-ID": "bad"})
    assert invalid.status_code == 422
    big = client.post(
        "/chats/",
        content=b" " * (64 * 1024 + 1),
        headers={"Content-Type": "application/json", "X-Request-ID": "big"},
    )
    assert big.status_code == 413
    assert big.headers["x-request-id"] == "big"

    assert logged_request(caplog, "ok")["status"] == 201
    assert logged_request(caplog, "bad")["status"] == 422
    assert logged_request(caplog, "big")["status"] == 413
    assert {logged_request(caplog, rid)["path"] for rid in ("ok", "bad")} == {"/chats/"}


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/chats/", "/chats/"),
        ("GET", "/chats", "/chats/"),
        ("HEAD", "/chats", "/chats/"),
        ("GET", "/chats/1", "/chats/{chat_id}"),
        ("GET", "/chats/1/", "/chats/{chat_id}"),
        ("HEAD", "/chats/1/", "/chats/{chat_id}"),
        ("DELETE", "/chats/1/", "/chats/{chat_id}"),
        ("GET", "/chats/1/messages", "/chats/{chat_id}/messages/"),
        ("POST", "/chats/1/messages", "/chats/{chat_id}/messages/"),
        ("PUT", "/chats/1/messages", "/chats/{chat_id}/messages/"),
        ("GET", "/health/live/", "/health/live"),
        ("GET", "/docs/", "/docs"),
        ("HEAD", "/redoc/", "/redoc"),
        ("GET", "/openapi.json/", "/openapi.json"),
        ("GET", "/static-offline-docs/swagger-ui.css", "/static-offline-docs/{path}"),
        ("GET", "/static-offline-docs/no-such-file.js", "/static-offline-docs/{path}"),
    ],
)
def test_one_template_per_route_whatever_the_spelling(
    client: httpx.Client, caplog: pytest.LogCaptureFixture, method: str, path: str, template: str
) -> None:
    client.request(method, path, headers={"X-Request-ID": "spelling"})
    line = logged_request(caplog, "spelling")
    assert (line["method"], line["path"]) == (method, template)


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/chats/", "/chats/"),
        ("/chats", "/chats/"),
        ("/chats/1/messages/", "/chats/{chat_id}/messages/"),
        ("/chats/1/messages", "/chats/{chat_id}/messages/"),
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_body_refused_before_routing_logs_its_routes_template(
    client: httpx.Client,
    caplog: pytest.LogCaptureFixture,
    max_body_size: int,
    path: str,
    template: str,
    chunked: bool,
) -> None:
    body = b" " * (max_body_size + 1)
    content = iter([body]) if chunked else body
    response = client.post(path, content=content, headers={"X-Request-ID": "too-big"})
    assert response.status_code == 413
    line = logged_request(caplog, "too-big")
    assert (line["method"], line["path"], line["status"]) == ("POST", template, 413)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/no/such/path/7f3a"),
        ("POST", "/chats/1/unknown"),
        ("GET", "/chats/1/nothing/2"),
        ("HEAD", "/" + "x" * 2000),
    ],
)
def test_a_path_no_route_serves_logs_null_not_the_path(
    client: httpx.Client, caplog: pytest.LogCaptureFixture, method: str, path: str
) -> None:
    """Else any client could write any string, of any length, into the path field."""
    response = client.request(method, path, headers={"X-Request-ID": "nowhere"})
    assert response.status_code == 404
    line = logged_request(caplog, "nowhere")
    assert (line["method"], line["path"], line["status"]) == (method, None, 404)


@given(
    request_id=st.text(),
    method=st.text(),
    path=st.none() | st.text(),
    status=st.integers(100, 599),
    duration_ms=st.floats(0, 1e9, allow_nan=False).map(lambda ms: round(ms, 3)),
)
def test_the_line_is_what_json_dumps_writes(
    request_id: str, method: str, path: str | None, status: int, duration_ms: float
) -> None:
    """Written by hand for speed, the line is byte for byte json.dumps's, whatever it holds
    (a request id is checked before it gets here, but the line does not count on it)."""
    server_request_id = secrets.token_hex(16)
    fields = {
        "request_id": request_id,
        "server_request_id": server_request_id,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
    }
    line = request_line(request_id, server_request_id, method, path, status, duration_ms)
    assert line == json.dumps(fields)
