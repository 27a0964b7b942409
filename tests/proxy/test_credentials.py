"""Credentials through deploy/nginx.conf: `Authorization: Bearer ...` reaches an
AUTH_MODE=required app as the client sent it, so do a browser's stream tickets (?ticket=),
and neither is ever written to nginx's logs (access and error) nor to the app's."""

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from devtools.ports import free_low_port
from infrastructure import migrations
from tests.auth.helpers import chatapi, succeeded
from tests.auth.helpers import events as events_of
from tests.conftest import EmptyDatabases
from tests.live.processes import ServeProcess
from tests.proxy.nginx import Nginx
from tests.support.sse import open_events

AUDIENCE = "chatapi"  # AUTH_JWT_AUDIENCE's default
LOG_SECONDS = 5.0


def user_token(user_id: str, secret: str) -> str:
    """A user token as the users' own application mints it."""
    expires = datetime.now(UTC) + timedelta(minutes=10)
    return jwt.encode({"sub": user_id, "aud": AUDIENCE, "exp": expires}, secret, algorithm="HS256")


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@dataclass
class SecuredStack:
    """nginx in front of `chatapi serve` with AUTH_MODE=required, on a database of its own."""

    app: ServeProcess
    nginx: Nginx
    database_url: str
    secret: str

    @property
    def url(self) -> str:
        return self.nginx.base_url

    def nginx_logs(self, requests: int) -> str:
        """nginx's access log, once it has a line for each of `requests`, and its error log."""
        deadline = time.monotonic() + LOG_SECONDS
        while len(self.nginx.access_log.read_text().splitlines()) < requests:
            assert time.monotonic() < deadline, self.nginx.access_log.read_text()
            time.sleep(0.05)
        return self.nginx.access_log.read_text() + self.nginx.error_log.read_text()


@pytest.fixture
def secured(nginx_binary: str, databases: EmptyDatabases, tmp_path: Path) -> Iterator[SecuredStack]:
    database_url = databases.new("postgresql")
    migrations.upgrade(database_url)
    secret = secrets.token_urlsafe(48)
    app = ServeProcess(
        database_url, tmp_path, port=free_low_port(), AUTH_MODE="required", AUTH_JWT_SECRET=secret
    )
    nginx = Nginx(nginx_binary, f"127.0.0.1:{app.port}", free_low_port())
    try:
        app.start()
        nginx.start()
        yield SecuredStack(app, nginx, database_url, secret)
    finally:
        nginx.stop()
        app.stop()


def test_bearer_credentials_and_tickets_reach_the_app_and_no_log(secured: SecuredStack) -> None:
    token = user_token("ann", secured.secret)
    forged = user_token("ann", secrets.token_urlsafe(48))
    made = chatapi(
        "keys", "create", "proxy-test", database_url=secured.database_url,
        AUTH_JWT_SECRET=secured.secret,
    )  # fmt: skip
    key = succeeded(made)["key"]
    tickets: list[str] = []
    with httpx.Client(base_url=secured.url, timeout=10) as http:
        # The app's own 401s, through the proxy: it checks, nginx only passes the header on.
        for headers in ({}, bearer(forged)):
            refused = http.post("/chats/", json={"title": "anyone"}, headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"] == "Bearer"

        created = http.post("/chats/", json={"title": "proxied"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        chat_id = created.json()["id"]
        path = f"/chats/{chat_id}"
        posted = http.post(f"{path}/messages/", json={"text": "hi"}, headers=bearer(token))
        assert posted.status_code == 201, posted.text
        assert posted.json()["author"] == "ann"
        members = http.get(f"{path}/members/", headers=bearer(token)).json()["members"]
        assert [(m["user_id"], m["role"]) for m in members] == [("ann", "owner")]
        as_bot = http.post(
            f"{path}/messages/", json={"text": "beep", "author": "bot"}, headers=bearer(key)
        )
        assert as_bot.status_code == 201, as_bot.text

        # A stream with the header (the events location has its own proxy_pass)...
        with open_events(http, f"{path}/events", after=0, headers=bearer(token)) as events:
            assert [e.json()["text"] for e in events.take(2)] == ["hi", "beep"]
        # ...and a browser's, with a ticket in the URL and no header.
        issued = http.post(f"{path}/events/tickets", headers=bearer(token))
        assert issued.status_code == 201, issued.text
        tickets.append(issued.json()["ticket"])
        with events_of(http, chat_id, ticket=tickets[0], after=1) as events:
            assert events.next().json()["text"] == "beep"
        spent = http.get(f"{path}/events", params={"ticket": tickets[0]})
        assert spent.status_code == 401, spent.text
    answered = {201: 4, 401: 3, 200: 3}  # each request above

    secured.app.stop()  # its request lines are written out from a queue: all of them now
    logs = secured.nginx_logs(sum(answered.values())) + secured.app.output()
    assert secured.nginx.answers({"127.0.0.1"}) == answered, logs
    for credential in (token, forged, key, *tickets):
        assert credential not in logs, f"a credential in the logs:\n{logs}"
    # The JWT's parts too, and the key's secret part, should a log cut them apart.
    for part in (*token.split("."), key.rsplit("_", 1)[-1]):
        assert part not in logs, f"part of a credential in the logs:\n{logs}"


def test_a_stream_the_app_cannot_take_leaves_its_ticket_out_of_the_error_log(
    nginx_binary: str,
) -> None:
    """nginx's error lines quote the request line: for a stream that the app could not be
    reached for, that line holds the ticket, still unspent, which none of its logs holds."""
    nginx = Nginx(nginx_binary, f"127.0.0.1:{free_low_port()}", free_low_port())
    ticket = secrets.token_urlsafe(32)
    token = user_token("ann", secrets.token_urlsafe(48))
    try:
        nginx.start()
        with httpx.Client(base_url=nginx.base_url, timeout=10) as http:
            stream = http.get("/chats/1/events", params={"ticket": ticket})
            with_header = http.get("/chats/1/events", headers=bearer(token))
            # Any other request's error line quotes it, query string and all: the check
            # below looks where nginx does write.
            read = http.get("/chats/1", params={"probe": "quoted"}, headers=bearer(token))
        logs = nginx.access_log.read_text() + nginx.errors()
    finally:
        nginx.stop()
    assert [stream.status_code, with_header.status_code, read.status_code] == [503] * 3
    assert "GET /chats/1?probe=quoted HTTP/1.1" in logs, logs
    assert ticket not in logs, logs
    assert token not in logs, logs
