"""A client that went away is logged as such: status 499 in its request line, no traceback.

Pipelined requests left unread are tested against `chatapi serve` itself, whose logging
configuration words uvicorn's report (tests/integration/test_serve_logs.py).
"""

import json
import logging
import time

import httpx
import pytest

from tests.api.helpers import Json
from tests.support.rude_clients import leave_mid_body

LOG_WAIT_SECONDS = 5.0


@pytest.fixture(autouse=True)
def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def request_lines(caplog: pytest.LogCaptureFixture, request_id: str) -> list[Json]:
    lines = [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "chatapi.requests"
    ]
    return [line for line in lines if line["request_id"] == request_id]


def wait_for_lines(caplog: pytest.LogCaptureFixture, request_id: str, count: int) -> list[Json]:
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while len(request_lines(caplog, request_id)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return request_lines(caplog, request_id)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.exc_info]


@pytest.mark.parametrize(
    ("path", "template"),
    [("/chats/", "/chats/"), ("/chats/1/messages/", "/chats/{chat_id}/messages/")],
)
def test_a_client_gone_mid_body_is_a_499_without_a_traceback(
    client: httpx.Client,
    caplog: pytest.LogCaptureFixture,
    server_url: str,
    path: str,
    template: str,
) -> None:
    leave_mid_body(server_url, path, "left-mid-body", declared=1000, sent=10)

    [line] = wait_for_lines(caplog, "left-mid-body", 1)
    assert (line["method"], line["path"], line["status"]) == ("POST", template, 499), line
    assert tracebacks(caplog) == []
    assert client.get("/health/live").status_code == 200  # and the server carries on
