"""`chatapi serve` with no proxy in front stays bounded: LIMIT_CONCURRENCY connections at most
(503 beyond), and a client that never finishes its body cannot hold up a SIGTERM for longer
than GRACEFUL_SHUTDOWN_TIMEOUT."""

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.live.processes import serving

GRACE_SECONDS = 2
EXIT_MARGIN_SECONDS = 3.0
LIMIT = 20
SETTLE_SECONDS = 5.0


@contextmanager
def connected(port: int) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        yield sock


def test_sigterm_with_a_half_sent_body_exits_within_the_grace_period(
    postgres_url: str, tmp_path: Path
) -> None:
    grace = str(GRACE_SECONDS)
    with (
        serving(postgres_url, tmp_path, GRACEFUL_SHUTDOWN_TIMEOUT=grace) as server,
        connected(server.port) as sock,
    ):
        sock.sendall(
            b"POST /chats/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"title": "half'
        )
        time.sleep(0.3)  # the app is reading the body by now
        stopping = time.monotonic()
        server.terminate()
        status = server.wait(GRACE_SECONDS + EXIT_MARGIN_SECONDS)
        exited_after = time.monotonic() - stopping
    assert status is not None, f"still running {exited_after:.1f} s after SIGTERM"
    assert status == 0, server.output()
    assert exited_after <= GRACE_SECONDS + EXIT_MARGIN_SECONDS
    print(f"\nSIGTERM with a half-sent body: exited after {exited_after:.2f} s")


def test_connections_beyond_limit_concurrency_get_503(postgres_url: str, tmp_path: Path) -> None:
    limits = {"LIMIT_CONCURRENCY": str(LIMIT), "MAX_STREAMS": str(LIMIT // 2)}
    with serving(postgres_url, tmp_path, None, **limits) as server, ExitStack() as silent:
        # Connections that send nothing: each counts, as an idle keep-alive one would.
        for _ in range(LIMIT):
            silent.enter_context(connected(server.port))
        time.sleep(0.2)  # accepted by now
        with httpx.Client(base_url=server.base_url, timeout=5) as http:
            refused = http.get("/health/live")
        assert refused.status_code == 503, refused.text
        silent.close()
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:  # once the server has seen them close, it answers again
            with httpx.Client(base_url=server.base_url, timeout=5) as http:
                answered = http.get("/health/live")
            if answered.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answered.status_code == 200, answered.text
        # Reached directly, it does not say what it runs on; it does say what browsers need.
        assert "server" not in answered.headers, answered.headers
        assert answered.headers["x-content-type-options"] == "nosniff"
