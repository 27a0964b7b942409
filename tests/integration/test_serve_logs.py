"""`chatapi serve`'s own logs under clients that leave early: no tracebacks, one line each
way they left, and a repeated report written once with a count. And not one request line
lost when it is stopped, though a thread writes them (cli/log_queue.py).

uvicorn answers a pipelined request into a connection the client has closed and fails (it
marks only the newest request as disconnected); with 100 such clients its log used to hold
100 tracebacks. Here the server runs as deployed, with its logging configuration.
"""

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from infrastructure import migrations
from tests.conftest import EmptyDatabases
from tests.live.processes import serving
from tests.live.subscribers import open_on_every_worker
from tests.support.rude_clients import leave_mid_body, pipeline_and_leave
from tests.support.servers import new_client

CONNECTIONS = 100
PIPELINED = 20
CLOSED = "client closed the connection before its answer was sent"
SETTLE_SECONDS = 0.5  # for the server to answer into the closed connections, and log it
LOGGED = 100
EXIT_SECONDS = 10.0


def split_output(output: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The request lines (JSON, on stdout) and every other line (the server's, on stderr)."""
    requests, others = [], []
    for line in output.splitlines():
        if line.startswith("{"):
            requests.append(json.loads(line))
        elif line.strip():
            others.append(line)
    return requests, others


@pytest.mark.parametrize("access_log", ["true", "false"])
def test_clients_that_leave_early_leave_no_traceback(tmp_path: Path, access_log: str) -> None:
    url = f"sqlite:///{tmp_path / 'chatapi.db'}"
    migrations.upgrade(url)
    with serving(url, tmp_path, ACCESS_LOG=access_log) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            chat = client.post("/chats/", json={"title": "pipelined"}).json()["id"]
            paths = [f"/chats/{chat}?limit=100", f"/chats/{chat + 1}", "/chats/?limit=100"]
            for _ in range(CONNECTIONS):
                pipeline_and_leave(server.base_url, paths * (PIPELINED // len(paths)), "piped")
            leave_mid_body(server.base_url, "/chats/", "left", declared=1000, sent=10)
            time.sleep(SETTLE_SECONDS)
            assert client.get(f"/chats/{chat}").status_code == 200
        output = server.log_path.read_text()

    assert "Traceback" not in output, output[:5000]
    assert "Exception in ASGI application" not in output, output[:5000]
    requests, others = split_output(output)
    # Rate-limited: one line for the lot, where each of them was a traceback.
    closed = [line for line in others if line.endswith(CLOSED)]
    assert len(closed) == 1, others
    assert closed[0].startswith("INFO:"), closed
    if access_log == "true":
        statuses = [line["status"] for line in requests if line["request_id"] == "piped"]
        assert 499 in statuses, statuses
        assert set(statuses) <= {200, 404, 499}, statuses
        [left] = [line for line in requests if line["request_id"] == "left"]
        assert left["status"] == 499, left
    else:
        assert requests == []


@pytest.mark.parametrize("workers", [1, 2])
def test_no_request_line_is_lost_on_sigterm(
    tmp_path: Path, databases: EmptyDatabases, workers: int
) -> None:
    """Requests, then SIGTERM with an event stream open on every worker: a line for each.

    A stream's line is logged as the shutdown ends it, a moment before its process exits. A
    worker process (WORKERS=2) is then killed by the SIGTERM that uvicorn raises again, with
    no exit handler run: the lines still queued must have been written out by then.
    """
    url = databases.new("postgresql" if workers > 1 else "sqlite")
    migrations.upgrade(url)
    with serving(url, tmp_path, WORKERS=str(workers)) as server:
        with new_client(server.base_url) as http:
            chat_id = http.post("/chats/", json={"title": "counted"}).json()["id"]
        subscribers = open_on_every_worker(server, chat_id, 1, workers)
        try:
            for n in range(LOGGED):  # a connection each: every worker serves some
                response = httpx.get(
                    f"{server.base_url}/health/live",
                    headers={"X-Request-ID": f"counted-{n}", "Connection": "close"},
                )
                assert response.status_code == 200
            server.terminate()
            assert server.wait(EXIT_SECONDS) == 0, server.output()
        finally:
            for subscriber in subscribers:
                subscriber.close()
        output = server.log_path.read_text()

    requests, _ = split_output(output)
    counted = [line["request_id"] for line in requests if line["request_id"].startswith("counted-")]
    assert sorted(counted) == sorted(f"counted-{n}" for n in range(LOGGED))
    streams = [line for line in requests if line["path"] == "/chats/{chat_id}/events"]
    assert len(streams) == len(subscribers), (streams, output[-5000:])
