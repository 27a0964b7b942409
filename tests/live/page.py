"""A web page whose EventSource follows a chat, served for the browser test from its own origin.

The page appends each `message.posted` to its DOM and reports to the page server what it got
(each open and each seq), so the test knows when to act while the page runs. Its last image is
answered only when the test releases it: the page's load event, after which Chromium dumps the
DOM, waits for the test.
"""

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

# Far above any wait of the test: a page left waiting by a failed test is let go in the end.
RELEASE_TIMEOUT_SECONDS = 120.0

PAGE = b"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>A chat, live</title></head>
<body>
<p>Opened <span id="opens">0</span> times.</p>
<ol id="messages"></ol>
<script>
const params = new URLSearchParams(location.search);
const source = new EventSource(`${params.get("api")}/chats/${params.get("chat")}/events`);
let opens = 0;
source.onopen = () => {
  opens += 1;
  document.getElementById("opens").textContent = String(opens);
  fetch(`/opened?count=${opens}`);
};
source.addEventListener("message.posted", (event) => {
  const item = document.createElement("li");
  item.dataset.id = event.lastEventId;
  item.textContent = event.data;
  document.getElementById("messages").appendChild(item);
  fetch(`/received?id=${encodeURIComponent(event.lastEventId)}`);
});
</script>
<img src="/until-released" alt="">
</body>
</html>
"""


# The same, as the README's browser example does it with AUTH_MODE=required: a ticket per
# connection (made with the user's token, which the test hands over in the page's URL), and
# on an error the page closes the stream and opens a new one itself, with a new ticket and
# `after` its last seq: EventSource's own reconnection would bring back the spent ticket.
TICKET_PAGE = b"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>A chat, live, with tickets</title></head>
<body>
<p>Opened <span id="opens">0</span> times.</p>
<ol id="messages"></ol>
<script>
const params = new URLSearchParams(location.search);
const api = params.get("api"), chat = params.get("chat"), token = params.get("token");
let opens = 0, lastSeq = 0;
async function connect() {
  let ticket;
  try {
    const answer = await fetch(`${api}/chats/${chat}/events/tickets`, {
      method: "POST", headers: {Authorization: `Bearer ${token}`},
    });
    if (!answer.ok) throw new Error(String(answer.status));
    ticket = (await answer.json()).ticket;
  } catch (error) {
    setTimeout(connect, 500);
    return;
  }
  const source = new EventSource(
    `${api}/chats/${chat}/events?ticket=${encodeURIComponent(ticket)}&after=${lastSeq}`);
  source.onopen = () => {
    opens += 1;
    document.getElementById("opens").textContent = String(opens);
    fetch(`/opened?count=${opens}`);
  };
  source.addEventListener("message.posted", (event) => {
    lastSeq = Number(event.lastEventId);
    const item = document.createElement("li");
    item.dataset.id = event.lastEventId;
    item.textContent = event.data;
    document.getElementById("messages").appendChild(item);
    fetch(`/received?id=${encodeURIComponent(event.lastEventId)}`);
  });
  source.onerror = () => {
    source.close();
    setTimeout(connect, 500);
  };
}
connect();
</script>
<img src="/until-released" alt="">
</body>
</html>
"""


class PageServer:
    """Serves a page (PAGE unless told) on a loopback port and records what it reports."""

    def __init__(self, page: bytes = PAGE) -> None:
        self.page = page
        self.opens = 0
        self.received: list[str] = []
        self._changed = threading.Condition()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Let the page finish loading, so that Chromium dumps its DOM."""
        self._released.set()

    def wait_until(self, condition: Callable[["PageServer"], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                assert left > 0, (
                    f"the page did not get there in {timeout} s: opened {self.opens} times, "
                    f"received {self.received}"
                )
                self._changed.wait(left)

    def _report(self, path: str) -> None:
        url = urlsplit(path)
        query = parse_qs(url.query)
        with self._changed:
            if url.path == "/opened":
                self.opens += 1
            else:
                self.received.append(query["id"][0])
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/":
                    self._answer(200, page.page, "text/html; charset=utf-8")
                    return
                if path == "/until-released":
                    page._released.wait(RELEASE_TIMEOUT_SECONDS)
                elif path in ("/opened", "/received"):
                    page._report(self.path)
                self._answer(204, b"", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no access log on stderr

        return Handler
