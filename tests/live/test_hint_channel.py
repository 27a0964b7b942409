"""The hint channel cut while messages are posted (PostgreSQL): nothing is lost.

One `chatapi serve` process holds one LISTEN connection. Messages are posted through it over
HTTP (its own streams are woken in the process) and by a script in the test process, another
process as far as hints go: the script's hints reach the server's streams only through LISTEN
or, while that is down, by the streams' once-a-second polling. PostgreSQL terminates the
LISTEN connection (`pg_terminate_backend`, as an administrator or a failover would).
"""

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.schemas import MessageResponse
from commands.post_message import PostMessage
from domain.principals import LOCAL
from infrastructure.container import Container
from tests.live.listeners import HintListeners
from tests.live.processes import serving
from tests.live.subscribers import Subscriber
from tests.support.servers import container_for, new_client

MESSAGES = 300
SUBSCRIBERS = 3
KILLS_AFTER = (75, 150, 225)  # the LISTEN connection is terminated after this many posts
START_SECONDS = 30.0
RECONNECT_SECONDS = 10.0  # the listener retries after 0.1 s, backing off up to 5 s
# Without hints a stream reads again only on its timer (HEARTBEAT): within the deadlines
# below, only a hint or the polling while the listener is down can have brought a message.
HEARTBEAT = "60"
DELIVERY_SECONDS = 10.0  # for the last of the MESSAGES, once posted
HINT_SECONDS = 2.0  # for one message once the listener is back
POLL_SECONDS = 3.0  # for one message while it is away: streams poll about once a second
POSTS_WHILE_AWAY = 3

Post = Callable[[str], Any]


def by_script(script: Container, chat_id: int) -> Post:
    """Posts as a script does, from the test process: the message as HTTP would render it."""

    def post(text: str) -> Any:
        posted = script.post_message()(PostMessage(chat_id=chat_id, text=text, principal=LOCAL))
        return json.loads(MessageResponse.from_event(posted).model_dump_json())

    return post


def deliver(post: Post, text: str, subscribers: list[Subscriber], within: float) -> Any:
    """Post, and wait until every subscriber has the message."""
    message = post(text)
    deadline = time.monotonic() + within
    for subscriber in subscribers:
        subscriber.wait_for_messages(message["seq"], deadline)
    return message


def assert_received_once_in_order(subscribers: list[Subscriber], posted: list[Any]) -> None:
    assert [message["seq"] for message in posted] == list(range(1, len(posted) + 1))
    for subscriber in subscribers:
        assert subscriber.seqs() == [message["seq"] for message in posted]
        assert [event.json() for event in subscriber.messages()] == posted
        assert subscriber.error is None, subscriber.error


def test_killing_the_listen_connection_while_posting_loses_nothing(
    postgres_url: str, hint_listeners: HintListeners, tmp_path: Path
) -> None:
    script = container_for(postgres_url)
    try:
        with (
            serving(postgres_url, tmp_path, STREAM_HEARTBEAT=HEARTBEAT) as server,
            new_client(server.base_url) as http,
        ):
            listeners = hint_listeners.wait_for(1, START_SECONDS, besides=set())
            created = http.post("/chats/", json={"title": "hints cut"})
            assert created.status_code == 201, created.text
            chat_id = created.json()["id"]

            def through_server(text: str) -> Any:
                response = http.post(f"/chats/{chat_id}/messages/", json={"text": text})
                assert response.status_code == 201, response.text
                return response.json()

            subscribers = [Subscriber(server.base_url, chat_id) for _ in range(SUBSCRIBERS)]
            try:
                for subscriber in subscribers:
                    subscriber.open()
                posted: list[Any] = []
                terminated: set[int] = set()
                for number in range(1, MESSAGES + 1):
                    post = through_server if number % 2 else by_script(script, chat_id)
                    posted.append(post(f"message {number}"))
                    if number in KILLS_AFTER:
                        hint_listeners.terminate(listeners)
                        terminated |= listeners
                        listeners = hint_listeners.wait_for(
                            1, RECONNECT_SECONDS, besides=terminated
                        )
                assert len(terminated) == len(KILLS_AFTER)
                deadline = time.monotonic() + DELIVERY_SECONDS
                for subscriber in subscribers:
                    subscriber.wait_for_messages(MESSAGES, deadline)

                # Streams recovered: a message from the script arrives promptly.
                posted.append(
                    deliver(by_script(script, chat_id), "afterwards", subscribers, HINT_SECONDS)
                )
                assert_received_once_in_order(subscribers, posted)
                # The listener reconnected by itself after the last kill, and stayed.
                assert hint_listeners.pids() == listeners
            finally:
                for subscriber in subscribers:
                    subscriber.close()
    finally:
        script.shutdown_resources()


def test_while_the_listener_cannot_reconnect_streams_poll(
    postgres_url: str, hint_listeners: HintListeners, tmp_path: Path
) -> None:
    script = container_for(postgres_url)
    try:
        with serving(postgres_url, tmp_path, STREAM_HEARTBEAT=HEARTBEAT) as server:
            listeners = hint_listeners.wait_for(1, START_SECONDS, besides=set())
            with new_client(server.base_url) as http:
                created = http.post("/chats/", json={"title": "hints away"})
                assert created.status_code == 201, created.text
            post = by_script(script, created.json()["id"])
            # One stream: its reads take one pooled connection at a time, which stays open
            # while new connections are refused (several streams polling in step would need
            # more, and some of their reads would fail until they are allowed again).
            subscribers = [Subscriber(server.base_url, created.json()["id"])]
            try:
                for subscriber in subscribers:
                    subscriber.open()
                # With the listener up; this also opens the connections used below.
                posted = [deliver(post, "before", subscribers, HINT_SECONDS)]

                with hint_listeners.new_connections_refused():
                    hint_listeners.terminate(listeners)
                    for number in range(1, POSTS_WHILE_AWAY + 1):
                        posted.append(deliver(post, f"away {number}", subscribers, POLL_SECONDS))
                    assert hint_listeners.pids() == set()  # it was away all along

                hint_listeners.wait_for(1, RECONNECT_SECONDS, besides=listeners)
                posted.append(deliver(post, "back", subscribers, HINT_SECONDS))
                assert_received_once_in_order(subscribers, posted)
            finally:
                for subscriber in subscribers:
                    subscriber.close()
    finally:
        script.shutdown_resources()
