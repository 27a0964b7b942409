"""A bug is a bare 500, but still carries the request id that its log line has."""

import httpx
from dependency_injector import providers

from infrastructure.container import Container
from queries.get_chat import GetChat


def broken(query: GetChat) -> None:
    raise RuntimeError("a bug")


def test_a_500_carries_the_request_id(container: Container, client: httpx.Client) -> None:
    with container.get_chat.override(providers.Object(broken)):
        response = client.get("/chats/1", headers={"X-Request-ID": "bug-1"})

    assert response.status_code == 500, response.text
    assert response.text == "Internal Server Error"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers.get("X-Request-ID") == "bug-1", response.headers
