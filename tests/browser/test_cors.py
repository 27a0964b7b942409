"""CORS, as a browser enforces it: a page of another origin calls the API with `fetch`.

The page is served by a small HTTP server of its own, on another port than the API (so
another origin). Its script creates a chat, posts a message twice with one
`Idempotency-Key`, follows the message's `Location`, and writes what it could read into the
DOM, which headless Chromium dumps. The API allows the origin of one page server and not
the other's; only the allowed page gets anywhere.
"""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest

from infrastructure import migrations
from infrastructure.container import Container
from tests.browser.conftest import Browser
from tests.browser.dom import parse
from tests.conftest import EmptyDatabases
from tests.support.database import count_rows
from tests.support.servers import container_for, served

PAGE = b"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>A front-end of another origin</title></head>
<body>
<pre id="outcome">pending</pre>
<script>
const api = new URLSearchParams(location.search).get("api");

function sent(response) {
  return {
    status: response.status,
    location: response.headers.get("Location"),
    requestId: response.headers.get("X-Request-ID"),
    replayed: response.headers.get("Idempotent-Replayed"),
  };
}

async function run() {
  const json = {"Content-Type": "application/json"};
  const created = await fetch(`${api}/chats/`, {
    method: "POST",
    headers: {...json, "X-Request-ID": "from-the-browser"},
    body: JSON.stringify({title: "From a browser"}),
  });
  const chat = await created.json();
  const post = () => fetch(`${api}/chats/${chat.id}/messages/`, {
    method: "POST",
    headers: {...json, "Idempotency-Key": "browser-retry-1"},
    body: JSON.stringify({text: "Hello from another origin"}),
  });
  const posted = await post();
  const retried = await post();
  const message = await posted.json();
  const shown = await fetch(new URL(posted.headers.get("Location"), api));
  return {
    chat: {...sent(created), body: chat},
    posted: {...sent(posted), body: message},
    retried: {...sent(retried), body: await retried.json()},
    shown: {status: shown.status, body: await shown.json()},
  };
}

run().then(
  (outcome) => { document.getElementById("outcome").textContent = JSON.stringify(outcome); },
  (error) => {
    document.getElementById("outcome").textContent = JSON.stringify({error: String(error)});
  },
);
</script>
</body>
</html>
"""


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log on stderr


@pytest.fixture(scope="module")
def page_origins() -> Iterator[tuple[str, str]]:
    """Two servers of the same page, on two ports: two origins."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), PageHandler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    first, second = (f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    yield first, second
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Api:
    url: str
    container: Container


@pytest.fixture(scope="module")
def api(databases: EmptyDatabases, page_origins: tuple[str, str]) -> Iterator[Api]:
    """The API, allowing the first page's origin (and one more), not the second's."""
    database_url = databases.new("sqlite")  # CORS does not depend on the database
    migrations.upgrade(database_url)
    allowed = (page_origins[0], "https://chat.example.com")
    container = container_for(database_url, cors_origins=allowed)
    with served(container) as url:
        yield Api(url, container)


def outcome(browser: Browser, page_origin: str, api: Api) -> Any:
    """What the page's script could do and read, from the DOM once it has run."""
    page = parse(browser.rendered_dom(f"{page_origin}/?{urlencode({'api': api.url})}"))
    found = page.find(lambda element: element.attrs.get("id") == "outcome")
    assert found is not None, "the page has no #outcome"
    return json.loads(found.text())


def test_a_page_of_an_allowed_origin_calls_the_api_and_reads_its_headers(
    browser: Browser, page_origins: tuple[str, str], api: Api
) -> None:
    seen = outcome(browser, page_origins[0], api)

    assert "error" not in seen, seen
    chat, posted, retried, shown = seen["chat"], seen["posted"], seen["retried"], seen["shown"]
    assert chat["status"] == 201
    assert chat["location"] == f"/chats/{chat['body']['id']}"
    assert chat["requestId"] == "from-the-browser"
    assert chat["replayed"] is None
    assert posted["status"] == 201
    assert posted["location"] == f"/chats/{chat['body']['id']}/messages/{posted['body']['id']}"
    assert posted["requestId"]
    assert posted["replayed"] is None
    # The retry with the same key: the same message, and the page can tell it was a replay.
    assert retried["status"] == 201
    assert retried["body"] == posted["body"]
    assert retried["replayed"] == "true"
    assert retried["requestId"] != posted["requestId"]
    # The Location resolves, from the browser too.
    assert shown == {"status": 200, "body": posted["body"]}


def test_a_page_of_another_origin_cannot_call_the_api(
    browser: Browser, page_origins: tuple[str, str], api: Api
) -> None:
    chats_before = count_rows(api.container.write_engine(), "chats")

    seen = outcome(browser, page_origins[1], api)

    assert set(seen) == {"error"}, seen
    assert "TypeError" in seen["error"], seen  # fetch's "Failed to fetch"
    # Refused at the preflight: the POST itself was never sent.
    assert count_rows(api.container.write_engine(), "chats") == chats_before
