"""A real browser follows a chat: headless Chromium's EventSource, and its automatic resume.

The page (page.py) is served from its own origin, allowed by CORS_ORIGINS, and appends each
`message.posted` to its DOM. The test posts; then the API server (`chatapi serve`) is stopped
with SIGTERM, which ends the stream, and messages are posted while it is away (by a script,
straight to the database); then a new server starts on the same address. The browser
reconnects by itself, sending `Last-Event-ID`, and gets what it missed, then the live
messages: its DOM ends with every message once, in order. Nothing but the browser tells the
new server where to resume.
"""

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from api.schemas import MessageResponse
from commands.post_message import PostMessage
from devtools.ports import free_port
from domain.principals import LOCAL
from tests.browser.dom import is_tag, parse
from tests.live.chromium import BackgroundPage
from tests.live.page import PageServer
from tests.live.processes import serving
from tests.support.servers import container_for, new_client

BEFORE, WHILE_AWAY, AFTER = 5, 5, 5  # messages posted before the drop, while away, after
OPEN_SECONDS = 30.0  # Chromium starting and loading the page
# Delivery to the page, as the page reports it; a reconnection waits the stream's `retry`
# (2 s) after each failed attempt.
DELIVERY_SECONDS = 15.0


def test_a_browser_resumes_by_itself_without_a_gap(
    database_url: str, chromium: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    script = container_for(database_url)  # posts while the API is away, as a script would
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    total = BEFORE + WHILE_AWAY + AFTER
    posted: list[Any] = []

    def post_over_http(chat_id: int, number: int) -> None:
        with new_client(api) as http:
            response = http.post(f"/chats/{chat_id}/messages/", json={"text": f"message {number}"})
            assert response.status_code == 201, response.text
            posted.append(response.json())

    try:
        with PageServer() as page:
            with serving(database_url, tmp_path, port, CORS_ORIGINS=page.origin):
                with new_client(api) as http:
                    created = http.post("/chats/", json={"title": "in a browser"})
                    assert created.status_code == 201, created.text
                    chat_id = created.json()["id"]
                browser = BackgroundPage(
                    chromium,
                    tmp_path_factory.mktemp("chromium-profile"),
                    f"{page.origin}/?{urlencode({'api': api, 'chat': chat_id})}",
                )
                browser.start()
                page.wait_until(lambda seen: seen.opens == 1, OPEN_SECONDS)
                for number in range(1, BEFORE + 1):
                    post_over_http(chat_id, number)
                page.wait_until(lambda seen: len(seen.received) == BEFORE, DELIVERY_SECONDS)

            # The server is gone, and the browser's stream with it.
            for number in range(BEFORE + 1, BEFORE + WHILE_AWAY + 1):
                message = script.post_message()(
                    PostMessage(chat_id=chat_id, text=f"message {number}", principal=LOCAL)
                )
                posted.append(json.loads(MessageResponse.from_event(message).model_dump_json()))

            with serving(database_url, tmp_path, port, CORS_ORIGINS=page.origin):
                page.wait_until(lambda seen: seen.opens == 2, DELIVERY_SECONDS)
                page.wait_until(
                    lambda seen: len(seen.received) == BEFORE + WHILE_AWAY, DELIVERY_SECONDS
                )
                for number in range(BEFORE + WHILE_AWAY + 1, total + 1):
                    post_over_http(chat_id, number)
                page.wait_until(lambda seen: len(seen.received) == total, DELIVERY_SECONDS)
                page.release()
                dom = parse(browser.dom())
    finally:
        script.shutdown_resources()

    items = dom.find_all(is_tag("li"))
    assert [item.attrs["data-id"] for item in items] == [str(seq) for seq in range(1, total + 1)]
    assert [json.loads(item.text()) for item in items] == posted
    opens = dom.find(lambda element: element.attrs.get("id") == "opens")
    assert opens is not None
    assert opens.text() == "2"  # one reconnection, made by the browser itself
