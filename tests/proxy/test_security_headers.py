"""The headers every answer carries through deploy/nginx.conf, the app's and nginx's own:
no MIME sniffing, no Referer, no framing of /docs and /redoc (nor of anything else), each
header once, and no version in `Server`."""

import socket
from contextlib import suppress

import httpx
import pytest

from devtools.ports import free_low_port
from tests.proxy.conftest import Stack
from tests.proxy.nginx import Nginx
from tests.proxy.probes import connect_from, status_of

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}

Headers = list[tuple[str, str]]


def header_list(response: httpx.Response) -> Headers:
    return [(name.lower(), value) for name, value in response.headers.multi_items()]


def raw_exchange(port: int, request: bytes) -> tuple[int, Headers]:
    """`request` sent as it is on a connection of its own; the answer's status and headers."""
    with connect_from("127.0.0.1", port) as sock:
        sock.settimeout(10)
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        # nginx may reset a connection it refused once it has answered: what came is enough.
        with suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert b"\r\n\r\n" in answer, answer
    head = answer.partition(b"\r\n\r\n")[0]
    lines = head.decode("latin-1").split("\r\n")
    headers = [line.split(":", 1) for line in lines[1:]]
    return status_of(head), [(name.strip().lower(), value.strip()) for name, value in headers]


def assert_secured(headers: Headers, what: str) -> None:
    """Each security header once, with its value; nginx's Server header, no version."""
    for name, value in SECURITY_HEADERS.items():
        found = [v for n, v in headers if n == name]
        assert found == [value], (what, name, headers)
    assert [v for n, v in headers if n == "server"] == ["nginx"], (what, headers)


@pytest.mark.parametrize(
    "path", ["/docs", "/docs/", "/redoc", "/redoc/", "/docs/oauth2-redirect", "/openapi.json"]
)
def test_the_docs_may_not_be_framed_sniffed_or_referred_from(stack: Stack, path: str) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        response = http.get(path)
    assert response.status_code == 200, response.text
    assert_secured(header_list(response), path)


def test_the_apps_answers_carry_them_once_beside_their_own_request_id(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        answers = {
            "created": http.post("/chats/", json={"title": "headers"}),
            "read": http.get(f"/chats/{stack.normal_chat}"),
            "refused by the app": http.get("/chats/not-a-number"),
            "live": http.get("/health/live"),
            "head": http.head("/health/live"),
        }
    assert answers["created"].status_code == 201, answers["created"].text
    assert answers["refused by the app"].status_code == 422, answers["refused by the app"].text
    for what, response in answers.items():
        headers = header_list(response)
        assert_secured(headers, what)
        # The app's own request id, not a second one from nginx; no Retry-After of nginx's.
        assert len([v for n, v in headers if n == "x-request-id"]) == 1, (what, headers)
        assert "retry-after" not in dict(headers), (what, headers)


def test_nginxs_own_answers_carry_them_with_one_request_id(stack: Stack) -> None:
    port = stack.nginx.port
    answers = {
        # An internal page asked for by a client: not found.
        404: raw_exchange(port, b"GET /_nginx/503 HTTP/1.1\r\nHost: x\r\n\r\n"),
        400: raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n"),
        414: raw_exchange(port, b"GET /" + b"x" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        431: raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n"
        ),
    }
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        too_large = http.post(f"/chats/{stack.normal_chat}/messages/", content=b"x" * 70_000)
    answers[413] = (too_large.status_code, header_list(too_large))
    for status, (answered, headers) in answers.items():
        assert answered == status, (status, headers)
        assert_secured(headers, str(status))
        assert len([v for n, v in headers if n == "x-request-id"]) == 1, (status, headers)
        assert "retry-after" not in dict(headers), (status, headers)


def test_nginxs_503_for_an_unreachable_app_carries_them_and_its_retry_after(
    nginx_binary: str,
) -> None:
    nginx = Nginx(nginx_binary, f"127.0.0.1:{free_low_port()}", free_low_port())
    try:
        nginx.start()
        with httpx.Client(base_url=nginx.base_url, timeout=10) as http:
            answers = [http.get("/docs"), http.get("/chats/1/events")]
    finally:
        nginx.stop()
    for response in answers:
        assert response.status_code == 503, response.text
        headers = header_list(response)
        assert_secured(headers, str(response.request.url))
        assert [v for n, v in headers if n == "retry-after"] == ["2"], headers
        assert len([v for n, v in headers if n == "x-request-id"]) == 1, headers
