"""The stream benchmark's own clients against the served app: the stream client's processes
and the steady poster see what a real client sees, and count what the benchmark reports. And
the service the benchmark starts as `make run` starts it."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.config import BenchError
from bench.procstat import CpuUsage
from bench.server import request, start_as_make_run
from bench.streams import HeldStreams, delivery
from infrastructure import migrations

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 15.0
NO_CPU = CpuUsage(0.0, 0.0, 0.0, 0.0, 0.0)  # not measured here


def new_chats(client: httpx.Client, count: int) -> int:
    """`count` chats with consecutive ids; returns the first id."""
    ids = [client.post("/chats/", json={"title": f"bench {n}"}).json()["id"] for n in range(count)]
    assert ids == list(range(ids[0], ids[0] + count))
    return int(ids[0])


def post_steadily(url: str, first: int, chats: int, rate: int, seconds: float, out: Path) -> None:
    command = [sys.executable, "-m", "bench.poster", url, str(first), str(chats)]
    subprocess.run([*command, str(rate), str(seconds), str(out)], cwd=ROOT, check=True, timeout=60)


def test_every_post_reaches_every_stream_of_its_chat_once_and_is_timed(
    client: httpx.Client, server_url: str, tmp_path: Path
) -> None:
    first = new_chats(client, 2)
    held = HeldStreams(server_url, (first, 2), 6, None, tmp_path / "client.log")
    try:
        assert held.ask("mark") == "marked"
        posted_file = tmp_path / "posted.json"
        post_steadily(server_url, first, 2, 20, 1.0, posted_file)
        posted = json.loads(posted_file.read_text())
        assert posted["failed"] == []
        assert sorted((chat, seq) for chat, seq, _ in posted["posted"]) == [
            (chat, seq) for chat in (first, first + 1) for seq in range(1, 11)
        ]

        assert held.wait_for(60, DEADLINE_S) == 60  # 10 posts x 3 streams, for each chat
        arrivals = held.dump(tmp_path / "arrivals.json")
        found = delivery(posted["posted"], arrivals["streams"], 1.0, posted["late_s"], NO_CPU)
    finally:
        held.close()

    assert (arrivals["gaps"], arrivals["duplicates"], arrivals["dropped"]) == (0, 0, 0)
    assert [len(stream["arrivals"]) for stream in arrivals["streams"]] == [10] * 6
    assert (found.posts, found.expected, found.received) == (20, 60, 60)
    assert 0 <= found.p50_ms <= found.p99_ms <= found.max_ms < 1000 * DEADLINE_S
    assert held.process.returncode == 0


def test_a_stream_the_server_ends_is_counted_as_dropped(
    client: httpx.Client, server_url: str, tmp_path: Path
) -> None:
    first = new_chats(client, 2)
    held = HeldStreams(server_url, (first, 2), 4, None, tmp_path / "client.log")
    try:
        assert client.delete(f"/chats/{first}").status_code == 204  # chat.deleted, then the end
        deadline = time.monotonic() + DEADLINE_S
        while held.counts()[1] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        events, dropped, _ = held.counts()
        arrivals = held.dump(tmp_path / "arrivals.json")
    finally:
        held.close()

    assert (events, dropped) == (0, 2)
    assert arrivals["reasons"] == [f"chat {first}: the server ended the stream"] * 2


def test_a_stream_the_server_refuses_fails_the_client_with_the_answer(
    server_url: str, tmp_path: Path
) -> None:
    answer = "could not open its streams: failed: chat 987654321: 'HTTP/1.1 404 Not Found'"
    with pytest.raises(BenchError, match=re.escape(answer)):
        HeldStreams(server_url, (987_654_321, 1), 1, None, tmp_path / "client.log")


def test_the_service_started_as_make_run_writes_a_request_line_per_request_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'chatapi.db'}"
    migrations.upgrade(url)
    # The bench's own settings are not `make run`'s: they must not reach the service (on
    # SQLite, WORKERS=2 would not even start).
    monkeypatch.setenv("ACCESS_LOG", "false")
    monkeypatch.setenv("WORKERS", "2")
    stdout = tmp_path / "stdout.log"
    service = start_as_make_run(url, None, tmp_path, stdout)
    try:
        assert request(service.url, "GET", "/chats/?limit=1").status == 200
    finally:
        service.stop()

    lines = [json.loads(line) for line in stdout.read_text().splitlines()]
    assert [line["path"] for line in lines if line["method"] == "GET"][-1] == "/chats/"
    assert service.workers == 1
    assert service.process.returncode == 0
    assert "Application startup complete" in service.log_file.read_text()  # stderr, apart
    assert "{" not in service.log_file.read_text()
