"""Clients that leave early, over raw sockets: in the middle of a body, or with requests
pipelined and their answers never read."""

import socket
from urllib.parse import urlsplit

CONNECT_TIMEOUT_SECONDS = 5.0


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    assert parts.hostname is not None, base_url
    assert parts.port is not None, base_url
    return socket.create_connection((parts.hostname, parts.port), CONNECT_TIMEOUT_SECONDS)


def leave_mid_body(base_url: str, path: str, request_id: str, declared: int, sent: int) -> None:
    """POST declaring a `declared`-byte body, send `sent` bytes of it, then close."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\nX-Request-ID: {request_id}\r\n\r\n"
    )
    with _connect(base_url) as connection:
        connection.sendall(head.encode() + b" " * sent)


def pipeline_and_leave(base_url: str, paths: list[str], request_id: str = "") -> None:
    """Send a GET of each path on one connection, at once, then close it unread."""
    header = f"X-Request-ID: {request_id}\r\n" if request_id else ""
    requests = "".join(f"GET {path} HTTP/1.1\r\nHost: test\r\n{header}\r\n" for path in paths)
    with _connect(base_url) as connection:
        connection.sendall(requests.encode())
