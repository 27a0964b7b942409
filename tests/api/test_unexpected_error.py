"""A bug is a JSON 500 that says nothing but its request id, and its traceback is logged once,
under that id."""

import logging
import time

import httpx
import pytest
from dependency_injector import providers

from infrastructure.container import Container
from queries.get_chat import GetChat
from tests.support.servers import client_of, container_for


class Broken:
    """GetChatDocumentHandler with a bug, wherever the read runs (a thread, the loop)."""

    def __call__(self, query: GetChat) -> None:
        raise RuntimeError("a bug")

    def plan(self, query: GetChat) -> None:
        raise RuntimeError("a bug")


broken = Broken()


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info]


def logged_tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # The server logs once it has answered: the client may have the answer a moment before.
    deadline = time.monotonic() + 5
    while not tracebacks(caplog) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # a second one would come at once
    return tracebacks(caplog)


def test_a_500_is_json_with_the_request_id(container: Container, client: httpx.Client) -> None:
    with container.get_chat_document.override(providers.Object(broken)):
        response = client.get("/chats/1", headers={"X-Request-ID": "bug-1"})

    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "internal server error", "request_id": "bug-1"}
    assert response.headers.get("X-Request-ID") == "bug-1", response.headers
    assert "a bug" not in response.text


def test_a_generated_request_id_is_the_one_in_the_body(
    container: Container, client: httpx.Client
) -> None:
    with container.get_chat_document.override(providers.Object(broken)):
        response = client.get("/chats/1")

    assert response.status_code == 500, response.text
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


def test_the_traceback_is_logged_once_with_the_request_id(
    container: Container, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with container.get_chat_document.override(providers.Object(broken)):
        client.get("/chats/1", headers={"X-Request-ID": "bug-2"})

    [record] = logged_tracebacks(caplog)
    assert record.name == "chatapi"
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "unexpected error, request_id bug-2"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_without_the_access_log_a_500_is_json_without_an_id(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No request ids at all then: the traceback is the server's to log (uvicorn's)."""
    container = container_for(database_url, access_log=False)
    with (
        container.get_chat_document.override(providers.Object(broken)),
        client_of(container) as client,
    ):
        response = client.get("/chats/1", headers={"X-Request-ID": "bug-3"})

    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "internal server error", "request_id": None}
    assert "X-Request-ID" not in response.headers
    assert not [record for record in tracebacks(caplog) if record.name.startswith("chatapi")]
