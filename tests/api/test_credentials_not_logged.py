"""No credential reaches a log line: user tokens, API keys, stream tickets, whether they are
good or refused, in the header or (refused) in the query string. Every record of every logger
the app writes through is searched, the request log included."""

import logging
from collections.abc import Iterator

import httpx
import pytest

from infrastructure.container import Container
from tests.auth.conftest import SECRET, bearer, token
from tests.support.servers import container_for, new_client, served


@pytest.fixture
def logged_client(
    container: Container, database_url: str, caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[httpx.Client, Container]]:
    """A client of an AUTH_MODE=required server with its request log on, over empty tables."""
    caplog.set_level(logging.DEBUG)
    own = container_for(database_url, auth_mode="required", auth_jwt_secret=SECRET)
    with served(own) as base_url, new_client(base_url) as client:
        yield client, own


def test_no_credential_appears_in_any_log_line(
    logged_client: tuple[httpx.Client, Container], caplog: pytest.LogCaptureFixture
) -> None:
    client, container = logged_client
    ann = token("ann")
    forged = token("ann", secret="another-secret-of-at-least-32-bytes!!")
    _, key = container.api_keys().create("logging test")
    wrong_key = key[:-4] + "0000"
    created = client.post("/chats/", json={"title": "logs"}, headers=bearer(ann))
    assert created.status_code == 201, created.text
    chat_id = created.json()["id"]
    ticket = client.post(f"/chats/{chat_id}/events/tickets", headers=bearer(ann)).json()["ticket"]

    answers = [
        client.get(f"/chats/{chat_id}", headers=bearer(ann)).status_code,
        client.get(f"/chats/{chat_id}", headers=bearer(key)).status_code,
        client.get(f"/chats/{chat_id}", headers=bearer(forged)).status_code,
        client.get(f"/chats/{chat_id}", headers=bearer(wrong_key)).status_code,
        client.get(f"/chats/{chat_id}", params={"access_token": ann}).status_code,
        client.get(f"/chats/{chat_id}/events", params={"ticket": "not-a-ticket"}).status_code,
    ]
    with client.stream("GET", f"/chats/{chat_id}/events", params={"ticket": ticket}) as stream:
        answers.append(stream.status_code)
    again = client.get(f"/chats/{chat_id}/events", params={"ticket": ticket})
    answers.append(again.status_code)

    assert answers == [200, 200, 401, 401, 401, 401, 200, 401]
    # The server's records: the test's own client (httpx, httpcore) logs the URLs it asks.
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(f"{record.getMessage()} {record.exc_text or ''}" for record in server_side)
    assert any(record.name == "chatapi.requests" for record in server_side)
    for secret in (ann, forged, key, wrong_key, ticket, key.rsplit("_", 1)[-1], SECRET):
        assert secret not in text
