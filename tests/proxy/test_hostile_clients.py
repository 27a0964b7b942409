"""Silent, slow and non-reading clients by the thousand, and a 100 MB header, against the
service behind deploy/nginx.conf (issue 13's probes), while a normal client keeps going.

Each probe passes when nginx holds or cuts the hostile clients by its own limits, the normal
client's every request succeeds with a p99 under a second, and the app's memory grows by
less than 100 MB. The timeouts are the file's own production values.
"""

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.deploy import nginx_conf
from tests.proxy.conftest import Stack
from tests.proxy.probes import (
    Figures,
    close_all,
    connect_from,
    hostile_addresses,
    open_sockets,
    status_of,
    wait_closed_by_peer,
)

SILENT = 2000
SLOW_HEADERS = 1000
SLOW_BODIES = 1000
NON_READING = 300
PIPELINED = 100
MARGIN_SECONDS = 5.0  # past a timeout, for nginx's timers and this test's polling
REFUSAL_SECONDS = 2.0
HOLD_SECONDS = 8.0  # how long the non-reading clients are kept
HUGE_HEADER_BYTES = 100 * 1024 * 1024
MANY_HEADERS = 100_000
CHUNK_BYTES = 1024 * 1024


def timeout(name: str) -> float:
    """A timeout of deploy/nginx.conf in seconds: the production value, waited for as it is."""
    return nginx_conf.seconds(nginx_conf.directive(name))


def assert_all_closed_by_nginx(
    figures: Figures, closed_after: list[float], count: int, limit: float
) -> None:
    if closed_after:
        figures.note = f"closed by nginx after {min(closed_after):.1f}-{max(closed_after):.1f} s"
    assert len(closed_after) == count, (
        f"{count - len(closed_after)} of {count} still open {limit + MARGIN_SECONDS} s on"
    )
    # Not cut early (say, by running out of connections): by the timeout.
    assert min(closed_after) > limit - 1, sorted(closed_after)[:10]


def test_silent_connections_are_closed_after_the_header_timeout(stack: Stack) -> None:
    limit = timeout("client_header_timeout")
    with stack.probe("silent connections", SILENT) as figures:
        sockets = open_sockets(stack.nginx.port, hostile_addresses(10, SILENT))
        try:
            closed_after = wait_closed_by_peer(sockets, limit + MARGIN_SECONDS)
        finally:
            close_all(sockets)
    assert_all_closed_by_nginx(figures, closed_after, SILENT, limit)


def test_slow_header_clients_are_closed_after_the_header_timeout(stack: Stack) -> None:
    """A byte every two seconds does not keep a connection: the timeout is for the whole
    header, however it trickles in."""
    limit = timeout("client_header_timeout")
    with stack.probe("slow headers", SLOW_HEADERS) as figures:
        sockets = open_sockets(stack.nginx.port, hostile_addresses(11, SLOW_HEADERS))
        try:
            for sock in sockets:
                sock.sendall(f"GET /chats/{stack.normal_chat} HTTP/1.1\r\nHost: x\r\n".encode())
            closed_after = wait_closed_by_peer(
                sockets, limit + MARGIN_SECONDS, drip=b"X-Slow: " + b"a" * 100
            )
        finally:
            close_all(sockets)
    assert_all_closed_by_nginx(figures, closed_after, SLOW_HEADERS, limit)


def test_slow_body_clients_are_closed_after_the_body_timeout_and_never_reach_the_app(
    stack: Stack,
) -> None:
    """Half a body, then silence: nginx waits client_body_timeout for the rest; the app is
    never asked (it gets a request only once its body is whole)."""
    limit = timeout("client_body_timeout")
    with httpx.Client(base_url=stack.app.base_url) as app:
        chat_id = app.post("/chats/", json={"title": "slow bodies"}).json()["id"]
    body = b'{"text": "never finished, never stored"}'
    head = (
        f"POST /chats/{chat_id}/messages/ HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with stack.probe("slow bodies", SLOW_BODIES) as figures:
        sockets = open_sockets(stack.nginx.port, hostile_addresses(12, SLOW_BODIES))
        try:
            for sock in sockets:
                sock.sendall(head + body[: len(body) // 2])
            closed_after = wait_closed_by_peer(sockets, limit + MARGIN_SECONDS)
        finally:
            close_all(sockets)
    assert_all_closed_by_nginx(figures, closed_after, SLOW_BODIES, limit)
    with httpx.Client(base_url=stack.app.base_url) as app:
        assert app.get(f"/chats/{chat_id}").json()["messages"] == []


def pipeline_without_reading(
    stack: Stack, figures: Figures, addresses: list[str], seconds: float
) -> Counter[int]:
    """From each address a connection pipelining PIPELINED `GET ?limit=100` (about 110 KB a
    response), left unread for `seconds`; how nginx answered them, by status."""
    request = f"GET /chats/{stack.big_chat}?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    sockets = open_sockets(stack.nginx.port, addresses)
    try:
        for sock in sockets:
            sock.sendall(request * PIPELINED)
        time.sleep(seconds)
    finally:
        close_all(sockets)
    answers = stack.nginx.answers(set(addresses))
    figures.note = (
        f"{len(sockets) * PIPELINED:,} requests sent: {answers[200]:,} served by the app, "
        f"{answers[429]:,} refused with 429"
    )
    return answers


def test_clients_that_never_read_from_one_address_get_their_share_only(stack: Stack) -> None:
    """Issue 13's client: 300 connections from one address. nginx takes each response from
    the app at once and holds what is not read; the address gets its share of the app
    (limit_conn, the read rate) and a 429 for the rest."""
    addresses = hostile_addresses(13, 1) * NON_READING
    with stack.probe("non-reading, one address", NON_READING) as figures:
        answers = pipeline_without_reading(stack, figures, addresses, HOLD_SECONDS)
    stack.settle()
    assert answers[429] > answers[200], answers


def test_clients_that_never_read_from_many_addresses_cannot_grow_the_apps_memory(
    stack: Stack,
) -> None:
    """300 addresses, one connection each: within every per-address limit, so the app serves
    them all, as fast as it can. nginx takes each response at once, so the app's memory stays
    where it was (uvicorn alone kept every unread response: 94 MB to 1.3 GB). The normal
    client's latency then depends on the app's CPU, shared with 300 busy clients: capacity
    (WORKERS), not the proxy; measured, not bounded."""
    addresses = hostile_addresses(14, NON_READING)
    with stack.probe("non-reading, 300 addresses", NON_READING, normal_bounded=False) as figures:
        pipeline_without_reading(stack, figures, addresses, HOLD_SECONDS)
    stack.settle()


def one_huge_header() -> Iterator[bytes]:
    yield b"X-Huge: "
    for _ in range(HUGE_HEADER_BYTES // CHUNK_BYTES):
        yield b"a" * CHUNK_BYTES


def many_headers() -> Iterator[bytes]:
    lines_per_chunk = 10_000
    for first in range(0, MANY_HEADERS, lines_per_chunk):
        yield b"".join(b"X-%d: v\r\n" % n for n in range(first, first + lines_per_chunk))


@pytest.mark.parametrize(
    ("probe", "header"),
    [("one 100 MB header", one_huge_header), ("100,000 headers", many_headers)],
)
def test_a_huge_header_is_refused_at_once_and_never_reaches_the_app(
    stack: Stack, probe: str, header: Callable[[], Iterator[bytes]]
) -> None:
    """nginx answers 431 (JSON) once its header buffers are full, a few KiB in, and closes
    the connection; the request, with its id, never reaches the app's log."""
    request_id = f"probe-{header.__name__}"
    start = f"GET /chats/{stack.normal_chat} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {request_id}\r\n"
    answered = threading.Event()
    sent = 0

    def send(sock: socket.socket) -> None:
        nonlocal sent
        try:
            for chunk in header():
                if answered.is_set():
                    return
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            return  # nginx closed: refused

    with stack.probe(probe, 1) as figures:
        with connect_from(hostile_addresses(15, 1)[0], stack.nginx.port) as sock:
            sock.settimeout(REFUSAL_SECONDS * 5)
            sock.sendall(start.encode())
            started = time.monotonic()
            sender = threading.Thread(target=send, args=(sock,), daemon=True)
            sender.start()
            answer = read_answer(sock)
            took = time.monotonic() - started
            answered.set()
            sock.shutdown(socket.SHUT_RDWR)  # the sender's sendall ends, before the close
            sender.join(timeout=REFUSAL_SECONDS * 5)
        figures.note = f"{status_of(answer)} after {took * 1000:.0f} ms"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(head) == 431, answer[:500]
    assert json.loads(body) == {"detail": "request header too large"}
    assert took < REFUSAL_SECONDS, f"answered after {took:.1f} s, {sent:,} bytes sent"
    assert request_id not in stack.app.output()


def read_answer(sock: socket.socket) -> bytes:
    """A whole response that says its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed in the body: {data!r}"
        body += chunk
    return head + b"\r\n\r\n" + body
