"""The stream benchmark's own clients against the served app: the stream client's processes
and the steady poster see what a real client sees, and count what the benchmark reports."""

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
from bench.streams import HeldStreams, delivery

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
