"""What a client sees of the service through deploy/nginx.conf: event streams unbuffered,
per-address limits answered as the app answers, request ids followed end to end, and nginx's
own refusals in the app's JSON shape."""

import json
import socket
import time
from collections.abc import Iterator
from contextlib import suppress

import httpx
import pytest

from devtools.ports import free_low_port
from tests.deploy.nginx_conf import block, directive, own
from tests.deploy.test_nginx_conf import EVENTS
from tests.proxy.conftest import Stack
from tests.proxy.nginx import Nginx
from tests.proxy.probes import close_all, connect_from, hostile_addresses, status_of
from tests.support.sse import open_events

DELIVERY_SECONDS = 1.0
WRITE_BURST = 40
READS_DURING_BURST = 20
REFUSED_WITHIN_SECONDS = 1.0


def client_from(base_url: str, address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


def assert_json_refusal(response: httpx.Response, status: int, retry_after: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["detail"], str), response.text
    assert response.headers.get("retry-after") == retry_after
    assert response.headers.get("x-request-id"), response.headers


def test_an_event_stream_delivers_each_message_as_it_is_posted(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        chat_id = http.post("/chats/", json={"title": "streamed"}).json()["id"]
        with open_events(http, f"/chats/{chat_id}/events", timeout=5) as events:
            for seq in (1, 2, 3):
                posted_at = time.monotonic()
                with httpx.Client(base_url=stack.url) as poster:
                    answer = poster.post(f"/chats/{chat_id}/messages/", json={"text": f"m{seq}"})
                assert answer.status_code == 201, answer.text
                event = events.next()  # the stream is still open: it has not ended
                waited = time.monotonic() - posted_at
                assert (event.event, event.id, event.json()["text"]) == (
                    "message.posted",
                    str(seq),
                    f"m{seq}",
                )
                assert waited < DELIVERY_SECONDS, f"event {seq} after {waited:.2f} s"


def test_a_burst_of_writes_is_refused_with_429_and_retry_after_while_reads_go_on(
    stack: Stack,
) -> None:
    address = hostile_addresses(16, 1)[0]
    burst = int(directive("limit_req zone=chatapi_writes").split("burst=")[1].split()[0])
    with stack.probe("write burst", 1) as figures, client_from(stack.url, address) as http:
        chat = f"/chats/{stack.big_chat}"
        writes = [
            http.post(f"{chat}/messages/", json={"text": f"burst {n}"}) for n in range(WRITE_BURST)
        ]
        reads = [http.get(chat) for _ in range(READS_DURING_BURST)]
        refused = [answer for answer in writes if answer.status_code == 429]
        figures.note = f"{WRITE_BURST - len(refused)} of {WRITE_BURST} writes in, 429 for the rest"
        time.sleep(int(refused[0].headers["retry-after"]) if refused else 0)
        again = http.post(f"{chat}/messages/", json={"text": "after Retry-After"})
    statuses = [answer.status_code for answer in writes]
    assert set(statuses) == {201, 429}, statuses
    # The burst is let in at once, then the rate: a few more at most while it was sent.
    assert burst < statuses.count(201) < burst + 10, statuses
    for answer in refused:
        assert_json_refusal(answer, 429, retry_after="1")
    assert [answer.status_code for answer in reads] == [200] * READS_DURING_BURST
    assert again.status_code == 201, again.text


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets a test opens, closed after it whatever happened."""
    opened: list[socket.socket] = []
    yield opened
    close_all(opened)


def open_stream(port: int, address: str, chat_id: int) -> tuple[socket.socket, bytes]:
    """An event stream asked for from `address` on a raw socket; the first bytes answered
    (its status line and headers, or the whole refusal)."""
    sock = connect_from(address, port)
    sock.settimeout(10)
    sock.sendall(f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock, sock.recv(4096)


def stream_once_room(port: int, address: str, chat_id: int) -> socket.socket:
    """A stream from `address`, asked for again while refused: nginx gives a slot back once
    it has seen the close of a stream, which may take a moment to reach it."""
    deadline = time.monotonic() + 5
    while True:
        sock, head = open_stream(port, address, chat_id)
        if status_of(head) == 200:
            return sock
        sock.close()
        assert time.monotonic() < deadline, f"no stream let in: {head!r}"
        time.sleep(0.1)


def test_event_streams_per_address_are_limited_and_a_closed_one_gives_its_place_back(
    stack: Stack, sockets: list[socket.socket]
) -> None:
    """One address may hold limit_conn chatapi_streams streams at once: the next is refused
    with nginx's JSON 429 (the app never sees it), other requests and other addresses go on,
    and a stream closed makes room for another."""
    allowed = int(directive("limit_conn chatapi_streams", block(EVENTS)))
    address, other = hostile_addresses(17, 2)
    heads = []
    for _ in range(allowed + 1):
        sock, head = open_stream(stack.nginx.port, address, stack.normal_chat)
        sockets.append(sock)
        heads.append(head)
    statuses = [status_of(head) for head in heads]
    assert statuses == [200] * allowed + [429], statuses
    refusal, _, body = heads[-1].partition(b"\r\n\r\n")
    assert json.loads(body) == {"detail": "too many requests from this address, retry later"}
    assert b"\r\nRetry-After: 1\r\n" in refusal + b"\r\n", refusal

    with client_from(stack.url, address) as http:
        assert http.get(f"/chats/{stack.normal_chat}").status_code == 200  # not a stream
    sockets.append(stream_once_room(stack.nginx.port, other, stack.normal_chat))

    sockets.pop(allowed).close()  # the refused one
    sockets.pop(0).close()  # one stream less: room for another, and only one
    sockets.append(stream_once_room(stack.nginx.port, address, stack.normal_chat))
    sock, head = open_stream(stack.nginx.port, address, stack.normal_chat)
    sockets.append(sock)
    assert status_of(head) == 429, head


def test_connections_per_address_are_limited(stack: Stack, sockets: list[socket.socket]) -> None:
    """Requests in progress from one address, whatever they are: limit_conn
    chatapi_connections of them at once. Each request here waits for a body it never gets
    (nginx keeps it, not the app, for client_body_timeout): the next one is refused at once
    with a 429, and one given up makes room for another."""
    allowed = int(directive("limit_conn chatapi_connections", own(block("server"))))
    address = hostile_addresses(18, 1)[0]
    waiting = (
        f"GET /chats/{stack.normal_chat} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n"
    ).encode()
    for _ in range(allowed + 1):
        sock = connect_from(address, stack.nginx.port)
        sockets.append(sock)
        sock.sendall(waiting)
    # nginx's workers take connections in parallel: which one is refused is not known, only
    # that one is, at once, and the others wait.
    time.sleep(REFUSED_WITHIN_SECONDS)
    answered = {}
    for index, sock in enumerate(sockets):
        sock.setblocking(False)
        with suppress(BlockingIOError):
            answered[index] = sock.recv(4096)
    assert [status_of(head) for head in answered.values()] == [429], answered
    sockets.pop(next(iter(answered))).close()
    sockets.pop(0).close()  # one waiting request given up: room for another
    deadline = time.monotonic() + 5
    while True:
        with client_from(stack.url, address) as http:
            if http.get(f"/chats/{stack.normal_chat}").status_code == 200:
                break
        assert time.monotonic() < deadline, "no room after a request was given up"
        time.sleep(0.1)


def test_request_ids_follow_a_request_through_the_proxy_into_the_apps_log(
    stack: Stack,
) -> None:
    with httpx.Client(base_url=stack.url) as http:
        given = http.get("/health/live", headers={"X-Request-ID": "client-chose-this"})
        generated = http.get("/health/live")
        # Not a token the app would take: nginx puts one of its own in its place.
        replaced = http.get("/health/live", headers={"X-Request-ID": "x" * 200})
    assert given.headers["x-request-id"] == "client-chose-this"
    access_log = stack.nginx.access_log.read_text()
    # The app writes its request lines from a queue, in batches (cli/log_queue.py).
    deadline = time.monotonic() + 5
    while '"request_id": "client-chose-this"' not in stack.app.output():
        assert time.monotonic() < deadline, stack.app.output()
        time.sleep(0.05)
    for answer in (given, generated, replaced):
        request_id = answer.headers["x-request-id"]
        assert f'"request_id":"{request_id}"' in access_log
        assert f'"request_id": "{request_id}"' in stack.app.output()
    assert replaced.headers["x-request-id"] != "x" * 200


def test_a_body_over_max_body_size_is_refused_by_the_proxy_as_by_the_app(stack: Stack) -> None:
    body = json.dumps({"text": "x" * 70_000})
    path = f"/chats/{stack.normal_chat}/messages/"
    headers = {"Content-Type": "application/json"}
    with (
        httpx.Client(base_url=stack.url) as proxied,
        httpx.Client(base_url=stack.app.base_url) as direct,
    ):
        from_proxy = proxied.post(path, content=body, headers=headers)
        from_app = direct.post(path, content=body, headers=headers)
    assert_json_refusal(from_proxy, 413, retry_after=None)
    assert from_proxy.json() == from_app.json()


def test_a_malformed_request_gets_nginxs_400_as_json(stack: Stack) -> None:
    with connect_from("127.0.0.1", stack.nginx.port) as sock:
        sock.settimeout(10)
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = sock.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(head) == 400, answer
    assert json.loads(body) == {"detail": "malformed request"}


def test_an_unreachable_app_is_a_json_503_with_retry_after(nginx_binary: str) -> None:
    """The app down (nothing listens upstream): 503, as the app answers when it cannot
    serve, not nginx's HTML 502."""
    nginx = Nginx(nginx_binary, f"127.0.0.1:{free_low_port()}", free_low_port())
    try:
        nginx.start()
        with httpx.Client(base_url=nginx.base_url) as http:
            answer = http.get("/chats/1")
    finally:
        nginx.stop()
    assert_json_refusal(answer, 503, retry_after="2")
    assert answer.json() == {"detail": "service unavailable"}
