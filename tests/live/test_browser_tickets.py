"""A real browser follows a chat with AUTH_MODE=required: headless Chromium's EventSource opens
the stream with a single-use ticket (it cannot send an Authorization header), as the README's
example does, and across a restart of the server comes back with a new ticket and `after`.

The user's token reaches the page in its URL only because this is a test page; the API never
sees it anywhere but in the Authorization header of the ticket request.
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
from tests.auth.conftest import SECRET, bearer, token
from tests.browser.dom import is_tag, parse
from tests.live.chromium import BackgroundPage
from tests.live.page import TICKET_PAGE, PageServer
from tests.live.processes import serving
from tests.support.servers import container_for, new_client

BEFORE, WHILE_AWAY, AFTER = 3, 3, 3
OPEN_SECONDS = 30.0
DELIVERY_SECONDS = 15.0


def test_a_browser_follows_with_tickets_across_a_restart(
    database_url: str, chromium: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    script = container_for(database_url)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    ann = token("ann")
    total = BEFORE + WHILE_AWAY + AFTER
    posted: list[Any] = []
    auth = {"AUTH_MODE": "required", "AUTH_JWT_SECRET": SECRET}

    def post_over_http(chat_id: int, number: int) -> None:
        with new_client(api) as http:
            response = http.post(
                f"/chats/{chat_id}/messages/", json={"text": f"m{number}"}, headers=bearer(ann)
            )
            assert response.status_code == 201, response.text
            posted.append(response.json())

    try:
        with PageServer(TICKET_PAGE) as page:
            with serving(database_url, tmp_path, port, CORS_ORIGINS=page.origin, **auth):
                with new_client(api) as http:
                    created = http.post("/chats/", json={"title": "tickets"}, headers=bearer(ann))
                    assert created.status_code == 201, created.text
                    chat_id = created.json()["id"]
                query = urlencode({"api": api, "chat": chat_id, "token": ann})
                browser = BackgroundPage(
                    chromium, tmp_path_factory.mktemp("chromium-profile"), f"{page.origin}/?{query}"
                )
                browser.start()
                page.wait_until(lambda seen: seen.opens == 1, OPEN_SECONDS)
                for number in range(1, BEFORE + 1):
                    post_over_http(chat_id, number)
                page.wait_until(lambda seen: len(seen.received) == BEFORE, DELIVERY_SECONDS)

            for number in range(BEFORE + 1, BEFORE + WHILE_AWAY + 1):
                message = script.post_message()(
                    PostMessage(chat_id=chat_id, text=f"m{number}", author="ann", principal=LOCAL)
                )
                posted.append(json.loads(MessageResponse.from_event(message).model_dump_json()))

            with serving(database_url, tmp_path, port, CORS_ORIGINS=page.origin, **auth):
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
    assert {message["author"] for message in posted} == {"ann"}
