"""WORKERS=2 on PostgreSQL: a message posted through either worker process reaches the streams
open on both, each message exactly once and in seq order.

`chatapi serve` runs as in production: a supervisor and two uvicorn workers accepting on one
socket. Which worker a connection landed on is read from /proc (the process that holds the
server's end of it), so the test knows that subscribers sit on both workers and that the
posts went through both.
"""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from tests.auth.conftest import SECRET, bearer, token
from tests.live.listeners import HintListeners
from tests.live.processes import ServeProcess, serving
from tests.live.sockets import client_port
from tests.live.subscribers import MAX_TO_REACH_EVERY_WORKER, open_on_every_worker
from tests.support.servers import HTTP_TIMEOUT_SECONDS, new_client
from tests.support.sse import open_events
from tests.support.threads import run_in_threads

WORKERS = 2
MESSAGES = 200
POSTERS = 4  # threads, each posting MESSAGES // POSTERS messages, each on a new connection
SUBSCRIBERS = 4  # at least; more if need be until both workers hold one
START_SECONDS = 30.0
# A stream's own timer reads only every HEARTBEAT seconds: within the deadlines below, only
# hints from the other worker can have brought its messages to a stream.
HEARTBEAT = "60"
DELIVERY_SECONDS = 10.0  # after the last of the concurrent posts
HINT_SECONDS = 2.0  # for one message


@contextmanager
def client_on(server: ServeProcess, worker: int) -> Iterator[httpx.Client]:
    """A client whose connection (kept alive) the worker process `worker` holds."""
    for _ in range(MAX_TO_REACH_EVERY_WORKER):
        with new_client(server.base_url) as client:
            response = client.get("/health/live")
            assert response.status_code == 200, response.text
            if server.worker_of(client_port(response)) == worker:
                yield client
                return
    raise AssertionError(f"{MAX_TO_REACH_EVERY_WORKER} new connections, none on {worker}")


def test_streams_on_either_worker_get_every_message_posted_through_either(
    postgres_url: str, hint_listeners: HintListeners, tmp_path: Path
) -> None:
    with serving(
        postgres_url, tmp_path, WORKERS=str(WORKERS), STREAM_HEARTBEAT=HEARTBEAT
    ) as server:
        # Both workers up, each with its one LISTEN connection.
        listeners = hint_listeners.wait_for(WORKERS, START_SECONDS, besides=set())
        with new_client(server.base_url) as http:
            created = http.post("/chats/", json={"title": "two workers"})
            assert created.status_code == 201, created.text
            chat_id = created.json()["id"]

        subscribers = open_on_every_worker(server, chat_id, SUBSCRIBERS, WORKERS)
        try:
            posted: dict[int, Any] = {}
            posts_through: Counter[int] = Counter()
            lock = threading.Lock()

            def poster(first: int) -> None:
                for number in range(first, first + MESSAGES // POSTERS):
                    # A new connection for each post: the kernel picks its worker.
                    with httpx.Client(
                        base_url=server.base_url, timeout=HTTP_TIMEOUT_SECONDS
                    ) as client:
                        response = client.post(
                            f"/chats/{chat_id}/messages/", json={"text": f"message {number}"}
                        )
                        assert response.status_code == 201, response.text
                        worker = server.worker_of(client_port(response))
                    with lock:
                        posted[response.json()["seq"]] = response.json()
                        posts_through[worker] += 1

            run_in_threads(
                [partial(poster, first) for first in range(0, MESSAGES, MESSAGES // POSTERS)]
            )

            assert sorted(posted) == list(range(1, MESSAGES + 1))
            assert len(posts_through) == WORKERS, f"posts went through {dict(posts_through)}"
            deadline = time.monotonic() + DELIVERY_SECONDS
            for subscriber in subscribers:
                subscriber.wait_for_messages(MESSAGES, deadline)

            # Then one message through each worker in turn, on a connection it holds: every
            # stream, on the other worker too, has it within HINT_SECONDS.
            for worker in sorted(posts_through):
                with client_on(server, worker) as client:
                    response = client.post(f"/chats/{chat_id}/messages/", json={"text": "one"})
                    assert response.status_code == 201, response.text
                    assert server.worker_of(client_port(response)) == worker
                posted[response.json()["seq"]] = response.json()
                deadline = time.monotonic() + HINT_SECONDS
                for subscriber in subscribers:
                    subscriber.wait_for_messages(len(posted), deadline)

            every = list(range(1, MESSAGES + WORKERS + 1))
            assert sorted(posted) == every
            for subscriber in subscribers:
                assert subscriber.seqs() == every
                assert [event.json() for event in subscriber.messages()] == [
                    posted[seq] for seq in every
                ]
                assert subscriber.error is None, subscriber.error
            # The same LISTEN connections served throughout, one per worker.
            assert hint_listeners.pids() == listeners
        finally:
            for subscriber in subscribers:
                subscriber.close()


def test_a_member_removed_through_one_worker_loses_their_stream_on_the_other(
    postgres_url: str, hint_listeners: HintListeners, tmp_path: Path
) -> None:
    """The removal reaches the other process as a hint, and the removed user's next read
    there ends the stream with `member.removed`: within a hint's time, not the heartbeat's."""
    ann, bob = bearer(token("ann")), bearer(token("bob"))
    auth = {"AUTH_MODE": "required", "AUTH_JWT_SECRET": SECRET}
    with serving(
        postgres_url, tmp_path, None, WORKERS=str(WORKERS), STREAM_HEARTBEAT=HEARTBEAT, **auth
    ) as server:
        hint_listeners.wait_for(WORKERS, START_SECONDS, besides=set())
        serving_workers: set[int] = set()
        for _ in range(MAX_TO_REACH_EVERY_WORKER):
            with new_client(server.base_url) as probe:
                serving_workers.add(server.worker_of(client_port(probe.get("/health/live"))))
            if len(serving_workers) == WORKERS:
                break
        one, other = sorted(serving_workers)
        for streaming, removing in ((one, other), (other, one)):
            with client_on(server, removing) as owner, client_on(server, streaming) as member:
                created = owner.post("/chats/", json={"title": "two workers"}, headers=ann)
                chat_id = created.json()["id"]
                added = owner.put(
                    f"/chats/{chat_id}/members/bob", json={"role": "member"}, headers=ann
                )
                assert added.status_code == 201, added.text
                path = f"/chats/{chat_id}/events"
                with open_events(member, path, after=0, headers=bob, timeout=5.0) as events:
                    assert (
                        owner.post(
                            f"/chats/{chat_id}/messages/", json={"text": "hi"}, headers=ann
                        ).status_code
                        == 201
                    )
                    assert events.next().json()["seq"] == 1
                    started = time.monotonic()
                    removed = owner.delete(f"/chats/{chat_id}/members/bob", headers=ann)
                    assert removed.status_code == 204, removed.text
                    assert [e.event for e in events.rest()] == ["member.removed"]
                    assert time.monotonic() - started < HINT_SECONDS
