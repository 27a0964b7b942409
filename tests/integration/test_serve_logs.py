"""`chatapi serve`'s own logs under clients that leave early: no tracebacks, one line each
way they left, and a repeated report written once with a count.

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
from tests.live.processes import serving
from tests.support.rude_clients import leave_mid_body, pipeline_and_leave

CONNECTIONS = 100
PIPELINED = 20
CLOSED = "client closed the connection before its answer was sent"
SETTLE_SECONDS = 0.5  # for the server to answer into the closed connections, and log it


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
