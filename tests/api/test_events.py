"""`GET /chats/{chat_id}/events`: live delivery over Server-Sent Events, on the served app.

Every stream is read by a real HTTP client (httpx, streaming) from uvicorn on a loopback port,
on both databases. On PostgreSQL the session's server hears hints through the database as
well; on SQLite its streams are woken in the process, and poll once a second besides.
"""

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import httpx_sse
import pytest
from dependency_injector import providers

from api.schemas import MessageResponse
from commands.post_message import PostMessage
from domain.principals import LOCAL
from infrastructure.container import Container
from queries.get_messages_after import GetMessagesAfter, MessagesAfterDTO
from tests.api.helpers import (
    Json,
    assert_detail_error,
    assert_validation_error,
    create_chat,
    missing_chat_id,
    post_message,
)
from tests.support.servers import app_of, container_for, new_client, served
from tests.support.sse import Event, SseParser, StreamEnded, open_events
from tests.support.threads import run_in_threads

# The longest a test waits for something the server does by itself.
DEADLINE_SECONDS = 15.0


def events_path(chat_id: int) -> str:
    return f"/chats/{chat_id}/events"


def open_streams(container: Container) -> int:
    """The streams the server under `container` has open now."""
    count = app_of(container).state.live.count
    assert isinstance(count, int)
    return count


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_SECONDS} s: {what}"
        time.sleep(0.01)


def stored(container: Container, chat_id: int) -> list[Json]:
    """Every message of the chat as stored, oldest first, as the API renders a message."""
    read = container.get_messages_after()
    messages: list[Json] = []
    page: MessagesAfterDTO | None = None
    while page is None or page.next_after is not None:
        after = 0 if page is None else page.next_after
        assert after is not None
        page = read(GetMessagesAfter(chat_id=chat_id, after=after, limit=100, principal=LOCAL))
        messages += [
            MessageResponse.model_validate(message).model_dump(mode="json")
            for message in page.messages
        ]
    return messages


def assert_posted(event: Event, message: Json) -> None:
    """`event` is the `message.posted` of `message`, as its POST answered it."""
    assert event.event == "message.posted", event
    assert event.id == str(message["seq"]), event
    assert event.json() == message, event


def seqs(events: list[Event]) -> list[int]:
    assert all(event.event == "message.posted" for event in events), events
    return [int(event.id or "") for event in events]


# --- receiving ---------------------------------------------------------------------------


def test_each_message_arrives_as_posted(client: httpx.Client, chat: Json) -> None:
    with open_events(client, events_path(chat["id"])) as events:
        headers = events.response.headers
        assert headers["content-type"].startswith("text/event-stream"), headers
        assert headers["cache-control"] == "no-cache", headers
        assert headers["x-accel-buffering"] == "no", headers
        for text in ("one", "two ✓", "three\nlines\r\n"):
            response = client.post(f"/chats/{chat['id']}/messages/", json={"text": text})
            assert response.status_code == 201, response.text
            event = events.next()
            assert_posted(event, response.json())
            assert event.data == response.text  # the POST's body, byte for byte
        assert events.parser.retry == 2000


def test_both_spellings_stream(client: httpx.Client, chat: Json) -> None:
    posted = post_message(client, chat["id"])
    for path in (events_path(chat["id"]), events_path(chat["id"]) + "/"):
        with open_events(client, path, after=0) as events:
            assert_posted(events.next(), posted)


def test_head_answers_without_opening_a_stream(
    client: httpx.Client, chat: Json, container: Container
) -> None:
    response = client.head(events_path(chat["id"]))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b""
    wait_for(lambda: open_streams(container) == 0, "HEAD's subscription closed")
    assert client.head(events_path(missing_chat_id(chat))).status_code == 404


def test_order_and_gaplessness_under_concurrent_posts(
    client: httpx.Client, server_url: str, chat: Json, container: Container
) -> None:
    """20 threads post 50 messages each while 3 subscribers read: each gets 1..1000 once, in
    order, equal to what is stored."""
    threads, posts, subscribers = 20, 50, 3
    total = threads * posts
    received: list[list[Event]] = [[] for _ in range(subscribers)]
    subscribed = threading.Barrier(subscribers + 1, timeout=DEADLINE_SECONDS)

    def subscriber(index: int) -> Callable[[], None]:
        def read() -> None:
            with new_client(server_url) as own, open_events(own, events_path(chat["id"])) as events:
                subscribed.wait()
                received[index] = events.take(total)

        return read

    def poster(number: int) -> Callable[[], None]:
        def post() -> None:
            with new_client(server_url) as own:
                for n in range(posts):
                    post_message(own, chat["id"], f"poster {number} message {n}")

        return post

    readers = [threading.Thread(target=subscriber(i), daemon=True) for i in range(subscribers)]
    for reader in readers:
        reader.start()
    subscribed.wait()
    run_in_threads([poster(number) for number in range(threads)])
    for reader in readers:
        reader.join(DEADLINE_SECONDS * 4)
        assert not reader.is_alive(), "a subscriber did not receive every message"

    truth = stored(container, chat["id"])
    assert [m["seq"] for m in truth] == list(range(1, total + 1))
    for events in received:
        assert seqs(events) == list(range(1, total + 1))
        assert [event.json() for event in events] == truth


# --- resuming ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["Last-Event-ID", "after"])
def test_a_cut_stream_resumes_with_exactly_the_missing_events_then_live_ones(
    client: httpx.Client, server_url: str, chat: Json, container: Container, how: str
) -> None:
    cut_at, total = 10, 40
    posting = threading.Thread(target=lambda: post_many(server_url, chat["id"], total), daemon=True)
    with open_events(client, events_path(chat["id"]), after=0) as events:
        posting.start()
        first = events.take(cut_at)
        last_id = events.parser.last_event_id
    assert seqs(first) == list(range(1, cut_at + 1))
    assert last_id == str(cut_at)

    resume: dict[str, Any] = (
        {"last_event_id": last_id} if how == "Last-Event-ID" else {"after": int(last_id)}
    )
    with open_events(client, events_path(chat["id"]), **resume) as events:
        rest = events.take(total - cut_at)
        posting.join(DEADLINE_SECONDS)
        live = post_message(client, chat["id"], "live")
        assert_posted(events.next(), live)
    assert seqs(rest) == list(range(cut_at + 1, total + 1))
    assert [event.json() for event in first + rest] == stored(container, chat["id"])[:total]


def post_many(server_url: str, chat_id: int, count: int) -> None:
    with new_client(server_url) as own:
        for n in range(1, count + 1):
            post_message(own, chat_id, f"message {n}")


@pytest.mark.parametrize("commits", ["before the backlog read", "after the backlog read"])
def test_a_message_committed_while_subscribing_arrives_exactly_once(
    client: httpx.Client, chat: Json, container: Container, commits: str
) -> None:
    """The stream subscribes, then reads its backlog: a message committed between the two,
    or while the read runs, is in the read or woken by its hint; either way sent once."""
    real = container.stream_messages_after()
    reads: list[GetMessagesAfter] = []
    between: list[Json] = []

    def racing_read(query: GetMessagesAfter) -> MessagesAfterDTO:
        reads.append(query)
        if len(reads) == 1 and commits == "before the backlog read":
            between.append(post_directly(container, chat["id"], "in between"))
        page = real(query)
        if len(reads) == 1 and commits == "after the backlog read":
            between.append(post_directly(container, chat["id"], "in between"))
        return page

    with (
        container.stream_messages_after.override(providers.Object(racing_read)),
        open_events(client, events_path(chat["id"]), after=0) as events,
    ):
        assert reads[0] == GetMessagesAfter(chat_id=chat["id"], after=0, limit=100, principal=LOCAL)
        assert len(between) == 1
        assert_posted(events.next(), between[0])
        # Anything sent twice would come before this one.
        after = post_message(client, chat["id"], "next")
        assert_posted(events.next(), after)


def post_directly(container: Container, chat_id: int, text: str) -> Json:
    """A post through the handler, in this thread, as a script does (and the API's POST)."""
    posted = container.post_message()(PostMessage(chat_id=chat_id, text=text, principal=LOCAL))
    return MessageResponse.from_event(posted).model_dump(mode="json")


def test_without_a_resume_point_the_stream_starts_with_the_next_message(
    client: httpx.Client, chat: Json
) -> None:
    post_message(client, chat["id"], "before")
    with open_events(client, events_path(chat["id"])) as events:
        posted = post_message(client, chat["id"], "after")
        assert_posted(events.next(), posted)


@pytest.mark.parametrize("after", [1, 2])
def test_with_both_a_reconnecting_browsers_last_event_id_wins(
    client: httpx.Client, chat: Json, after: int
) -> None:
    """A page that opened `?after=A` reconnects to that URL with the last id it got, >= A."""
    for n in (1, 2):
        post_message(client, chat["id"], f"message {n}")
    three = post_message(client, chat["id"], "three")
    with open_events(client, events_path(chat["id"]), after=after, last_event_id=2) as events:
        assert_posted(events.next(), three)


# --- the end of a chat, and errors ---------------------------------------------------------


def test_a_chat_deleted_mid_stream_ends_it_with_chat_deleted(
    client: httpx.Client, chat: Json, container: Container
) -> None:
    messages = [post_message(client, chat["id"], f"message {n}") for n in (1, 2)]
    with open_events(client, events_path(chat["id"]), after=0) as events:
        for message in messages:
            assert_posted(events.next(), message)
        assert client.delete(f"/chats/{chat['id']}").status_code == 204
        deleted = events.next()
        assert (deleted.event, deleted.id) == ("chat.deleted", None)
        assert deleted.json() == {"chat_id": chat["id"]}
        with pytest.raises(StreamEnded):
            events.next()
    wait_for(lambda: open_streams(container) == 0, "the ended stream unsubscribed")


def test_a_missing_chat_is_a_404(client: httpx.Client, chat: Json, container: Container) -> None:
    missing = missing_chat_id(chat)
    detail = assert_detail_error(client.get(events_path(missing)), 404)
    assert detail == f"chat {missing} not found"
    assert_detail_error(client.get(events_path(missing), params={"after": 0}), 404)
    assert open_streams(container) == 0


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "+1", "1_0", "", "99999999999999999999"])
def test_a_malformed_resume_point_is_a_422(client: httpx.Client, chat: Json, value: str) -> None:
    path = events_path(chat["id"])
    assert_validation_error(client.get(path, params={"after": value}), "query", "after")
    # Even empty: a browser sends no Last-Event-ID rather than an empty one.
    response = client.get(path, headers={"Last-Event-ID": value})
    assert_validation_error(response, "header", "last-event-id")


def test_a_last_event_id_before_after_is_a_422(client: httpx.Client, chat: Json) -> None:
    post_message(client, chat["id"])
    response = client.get(
        events_path(chat["id"]), params={"after": 1}, headers={"Last-Event-ID": "0"}
    )
    assert_validation_error(response, "header", "last-event-id")


@pytest.mark.parametrize("how", ["Last-Event-ID", "after"])
def test_a_resume_point_past_the_chats_end_is_a_409(
    client: httpx.Client, chat: Json, container: Container, how: str
) -> None:
    post_message(client, chat["id"])
    resume = (
        {"headers": {"Last-Event-ID": "2"}} if how == "Last-Event-ID" else {"params": {"after": 2}}
    )
    detail = assert_detail_error(client.get(events_path(chat["id"]), **resume), 409)
    assert "last seq is 1" in detail
    assert open_streams(container) == 0


# --- limits ------------------------------------------------------------------------------


Serve = Callable[..., tuple[httpx.Client, Container]]


@pytest.fixture
def own_server(container: Container, database_url: str) -> Iterator[Serve]:
    """Serves the app over a container of its own with the given settings, on the test's
    empty tables: `client, its_container = own_server(max_streams=2)`."""
    with ExitStack() as stack:

        def serve(**settings: Any) -> tuple[httpx.Client, Container]:
            own = container_for(database_url, **settings)
            base_url = stack.enter_context(served(own))
            return stack.enter_context(new_client(base_url)), own

        yield serve


def test_max_streams_refuses_one_more_with_503_until_one_closes(
    own_server: Serve,
) -> None:
    client, container = own_server(max_streams=2, retry_after=3)
    chat = create_chat(client)
    path = events_path(chat["id"])
    with open_events(client, path), open_events(client, path) as second:
        assert open_streams(container) == 2
        refused = client.get(path)
        assert assert_detail_error(refused, 503) == "too many open event streams on this server"
        assert refused.headers["retry-after"] == "3"
        second.response.close()
        wait_for(lambda: open_streams(container) == 1, "the closed stream is counted out")
        with open_events(client, path) as third:
            posted = post_message(client, chat["id"])
            assert_posted(third.next(), posted)
            assert open_streams(container) == 2
    wait_for(lambda: open_streams(container) == 0, "every stream counted out")


def test_a_subscriber_that_stops_reading_is_disconnected(own_server: Serve) -> None:
    """Its sends wait for STREAM_SEND_TIMEOUT at most: then the stream ends and its socket is
    closed once what the kernel holds is flushed, so no buffer grows without bound."""
    client, container = own_server(stream_send_timeout=0.5)
    chat = create_chat(client)
    big = "😀" * 5000  # 20 kB of UTF-8 per event
    count = 300  # 6 MB: more than loopback's socket buffers hold
    with new_client(str(client.base_url)) as poster:
        run_in_threads([lambda: post_many_texts(poster, chat["id"], big, count // 4)] * 4)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, before connecting: the server's sends block sooner.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect((client.base_url.host, client.base_url.port or 80))
        request = f"GET {events_path(chat['id'])}?after=0 HTTP/1.1\r\nHost: test\r\n\r\n"
        sock.sendall(request.encode())
        wait_for(lambda: open_streams(container) == 1, "the stream opened")
        # Not reading at all: the server gives up on it.
        wait_for(lambda: open_streams(container) == 0, "the stream given up")
        received = read_until_closed(sock)
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:200]
    delivered = received.count(b"event: message.posted")
    assert 0 < delivered < count, delivered
    assert not received.endswith(b"0\r\n\r\n")  # no last chunk: cut, not finished


def post_many_texts(client: httpx.Client, chat_id: int, text: str, count: int) -> None:
    for _ in range(count):
        post_message(client, chat_id, text)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (which fails the test if it does not
    within the deadline)."""
    sock.settimeout(DEADLINE_SECONDS)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def test_heartbeats_keep_a_quiet_stream_alive(own_server: Serve) -> None:
    client, _ = own_server(stream_heartbeat=0.2)
    chat = create_chat(client)
    started = time.monotonic()
    # A read timeout of 2 s: each wait for bytes is bounded, and a heartbeat ends it.
    with open_events(client, events_path(chat["id"]), timeout=2.0) as events:
        assert events.read_until(lambda: len(events.parser.comments) == 3) == []
        elapsed = time.monotonic() - started
        assert all(comment.startswith("ping") for comment in events.parser.comments)
        assert 0.6 <= elapsed < 3.0, elapsed  # one every 0.2 s, never sooner
        # And the stream still delivers.
        posted = post_message(client, chat["id"])
        assert_posted(events.next(), posted)


def test_an_sse_client_that_hands_over_every_block_gets_only_whole_events(
    own_server: Serve,
) -> None:
    """httpx-sse dispatches every block that sets a field, `retry` or a kept `id` included,
    where EventSource dispatches only those with data. The `retry` comes with the first
    event, and a heartbeat ends no block: so no event is empty, before, between or after."""
    client, _ = own_server(stream_heartbeat=0.05)
    chat = create_chat(client)
    path = events_path(chat["id"])
    with httpx_sse.connect_sse(client, "GET", path, timeout=DEADLINE_SECONDS) as source:
        events = source.iter_sse()
        time.sleep(0.2)  # heartbeats, after the `retry` line
        posted = post_message(client, chat["id"])
        first = next(events)
        time.sleep(0.2)  # heartbeats, after an event with an `id`
        added = client.put(f"/chats/{chat['id']}/members/bob", json={"role": "member"})
        assert added.status_code == 201, added.text
        second = next(events)
        time.sleep(0.2)
        assert client.delete(f"/chats/{chat['id']}").status_code == 204
        rest = list(events)
    received = [first, second, *rest]
    assert [event.event for event in received] == [
        "message.posted",
        "member.added",
        "chat.deleted",
    ]
    assert all(event.data for event in received), received
    assert (first.retry, first.id, first.json()) == (2000, str(posted["seq"]), posted)
    assert second.json() == {"chat_id": chat["id"], "user_id": "bob", "role": "member"}
    assert rest[0].json() == {"chat_id": chat["id"]}


def test_a_stream_is_logged_once_with_its_route(
    client: httpx.Client, chat: Json, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="chatapi.requests")
    with open_events(client, events_path(chat["id"]) + "/") as events:
        request_id = events.response.headers["x-request-id"]
        posted = post_message(client, chat["id"])
        assert_posted(events.next(), posted)

    def lines() -> list[Json]:
        return [
            json.loads(record.getMessage())
            for record in caplog.records
            if record.name == "chatapi.requests"
            and json.loads(record.getMessage())["request_id"] == request_id
        ]

    # Logged when it ends, with how long it was open.
    wait_for(lambda: len(lines()) > 0, "the stream's log line")
    time.sleep(0.1)
    (line,) = lines()
    assert (line["method"], line["path"], line["status"]) == ("GET", "/chats/{chat_id}/events", 200)


def test_the_sse_parser_of_these_tests() -> None:
    """The helper itself, on a hand-written frame: comments, retry, multi-line data."""
    parser = SseParser()
    frames = [": ping", "retry: 2000", "", "id: 3", "event: x", "data: a", "data: b", ""]
    dispatched = [parser.feed(line) for line in frames]
    assert dispatched == [None] * 7 + [Event("x", "a\nb", "3")]
    assert (parser.retry, parser.last_event_id, parser.comments) == (2000, "3", ["ping"])
