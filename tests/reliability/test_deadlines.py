"""Every wait has a deadline: a frozen database, a chat whose row lock is stuck, handler threads
all busy, a handler running past REQUEST_TIMEOUT.

Each costs a client a 503 with Retry-After within the deadline set, never a hang; the other
chats, reads and /health/ready keep being served; everything recovers by itself; and
nothing answered 503 is stored, nothing answered 201 is lost or doubled. Deadlines are short
here, so the module runs in about half a minute. Run with `-s` for the figures.
"""

import asyncio
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from dependency_injector import providers
from sqlalchemy import Connection

from api.admission import CHAT_BUSY, NO_THREAD, STATEMENT_CANCELLED, TIMED_OUT
from bench.procstat import children
from cli.serve import EXIT_WAIT_SECONDS
from devtools.postgres_cluster import PostgresCluster
from infrastructure.container import Container
from queries.get_chat import GetChat
from tests.live.processes import serving
from tests.reliability.load import Exchange, Recorder, create_chat, exchange, stored_messages
from tests.support.database import count_rows, held, inspector
from tests.support.servers import container_for, new_client, served
from tests.support.threads import run_in_threads

RETRY_AFTER = 1
# A request is answered within its deadline plus this: the server shares this process (and
# its GIL) with dozens of client threads on a machine that may be busy.
MARGIN = 0.75
SETTLE_SECONDS = 5.0  # for threads to come back and connections to return, after the event


def container_of(database_url: str, **settings: Any) -> Container:
    """The service's container with the test's deadlines, RETRY_AFTER and no access log."""
    return container_for(database_url, retry_after=RETRY_AFTER, access_log=False, **settings)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def assert_answered(exchanges: list[Exchange]) -> None:
    """200, 201 or 503 only, and every 503 a JSON `{"detail"}` with Retry-After."""
    odd = [e.describe() for e in exchanges if e.status not in (200, 201, 503)]
    assert not odd, (Counter(e.status for e in exchanges), odd[:10])
    unavailable = [e for e in exchanges if e.status == 503]
    bad = [
        e.describe()
        for e in unavailable
        if e.retry_after != str(RETRY_AFTER)
        or not isinstance(e.body, dict)
        or set(e.body) != {"detail"}
    ]
    assert not bad, bad[:10]


def assert_stored_exactly(database_url: str, posts: list[Exchange]) -> tuple[int, int]:
    """Each post answered 201 stored once, under its id; none answered otherwise stored."""
    acknowledged = {e.posted: e for e in posts if e.status == 201}
    refused = {e.posted for e in posts if e.status != 201}
    with inspector(database_url) as engine:
        stored = stored_messages(engine)
    by_text: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for message_id, chat_id, stored_text in stored:
        by_text[stored_text].append((message_id, chat_id))
    for posted_text, post in acknowledged.items():
        assert by_text.get(posted_text) == [(post.body["id"], post.chat_id)], posted_text
    appeared = sorted(t for t in refused if t in by_text)
    assert not appeared, f"{len(appeared)} posts answered 503 were stored: {appeared[:10]}"
    return len(acknowledged), len(refused)


def assert_connections_returned(container: Container) -> None:
    """Both pools get every connection back once the threads have returned."""
    deadline = time.monotonic() + SETTLE_SECONDS
    engines = (container.write_engine(), container.read_engine())
    while any(engine.pool.checkedout() for engine in engines):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, [e.pool.status() for e in engines]
        time.sleep(0.05)


# --- a frozen database ------------------------------------------------------------------------

FROZEN_THREAD_WAIT = 0.5
FROZEN_REQUEST_TIMEOUT = 1.5
FROZEN_READY_TIMEOUT = 1.0
FROZEN_CONNECT_TIMEOUT = 2
FREEZE_SECONDS = 4.0
AFTER_THAW_SECONDS = 4.0
RECOVERY_SECONDS = 2.0  # the statements cancelled at the deadlines end once it thaws
FROZEN_CLIENTS = 8
MIN_EXCHANGES_PER_PHASE = 20


@contextmanager
def frozen(cluster: PostgresCluster) -> Iterator[None]:
    """PostgreSQL stopped with SIGSTOP, the postmaster and every backend, then continued.

    What a hung server looks like: its kernel still accepts connections and acknowledges
    data, so no TCP timeout on the client's side ever fires.
    """
    postmaster = int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])
    stopped = [postmaster]
    try:
        os.kill(postmaster, signal.SIGSTOP)  # first, so that it forks no backend meanwhile
        stopped += children(postmaster)
        for pid in stopped[1:]:
            with suppress(ProcessLookupError):  # a backend that ended meanwhile
                os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        # As root, the cluster runs under runuser, which stops itself when its child stops.
        extra = [] if cluster.process is None else [cluster.process.pid]
        for pid in [*stopped, *extra]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def bound_of(e: Exchange) -> float:
    timeout = FROZEN_READY_TIMEOUT if e.path == "/health/ready" else FROZEN_REQUEST_TIMEOUT
    return timeout + MARGIN


def test_a_frozen_database_costs_at_most_the_deadline_and_recovers(
    own_cluster: PostgresCluster, own_database: str
) -> None:
    container = container_of(
        own_database,
        thread_wait_timeout=FROZEN_THREAD_WAIT,
        request_timeout=FROZEN_REQUEST_TIMEOUT,
        ready_timeout=FROZEN_READY_TIMEOUT,
        db_connect_timeout=FROZEN_CONNECT_TIMEOUT,
        db_pool_timeout=1.0,
    )
    with served(container) as base_url:
        chat = create_chat(base_url, "frozen")
        with new_client(base_url) as http:
            assert http.post(f"/chats/{chat}/messages/", json={"text": "before"}).status_code == 201
            assert http.get("/health/ready").status_code == 200
        recorder = Recorder()
        go, stop = threading.Event(), threading.Event()
        times: dict[str, float] = {}

        def conductor() -> None:
            try:
                with frozen(own_cluster):
                    times["frozen"] = time.monotonic()
                    go.set()  # the clients start once it is frozen: no COMMIT caught midway
                    time.sleep(FREEZE_SECONDS)
                    times["thawing"] = time.monotonic()
                time.sleep(AFTER_THAW_SECONDS)
            finally:
                go.set()
                stop.set()

        def client(worker: int) -> Callable[[], None]:
            def run() -> None:
                with new_client(base_url) as http:  # made before: it costs CPU
                    go.wait()
                    n = 0
                    while not stop.is_set():
                        body = {"text": f"frozen w{worker} #{n}"}
                        recorder.add(exchange(http, "POST", f"/chats/{chat}/messages/", chat, body))
                        recorder.add(exchange(http, "GET", f"/chats/{chat}?limit=5", chat))
                        recorder.add(exchange(http, "GET", "/health/ready", chat))
                        n += 1
                        stop.wait(0.02)

            return run

        run_in_threads([conductor, *(client(w) for w in range(FROZEN_CLIENTS))])
        exchanges = recorder.all()
        assert_answered(exchanges)
        slow = [e.describe() for e in exchanges if e.duration > bound_of(e)]
        assert not slow, slow[:10]

        during = [e for e in exchanges if e.received <= times["thawing"]]
        assert len(during) >= MIN_EXCHANGES_PER_PHASE, len(during)
        assert all(e.status == 503 for e in during), [e.describe() for e in during][:10]
        recovered = [e for e in exchanges if e.sent >= times["thawing"] + RECOVERY_SECONDS]
        assert len(recovered) >= MIN_EXCHANGES_PER_PHASE, len(recovered)
        failed_late = [e.describe() for e in recovered if e.status not in (200, 201)]
        assert not failed_late, failed_late[:10]

        posts = [e for e in exchanges if e.is_post]
        acknowledged, refused = assert_stored_exactly(own_database, posts)
        assert acknowledged
        assert refused
        with new_client(base_url) as http:
            shown = http.get(f"/chats/{chat}")
        assert shown.json()["message_count"] == acknowledged + 1, shown.json()  # + "before"
        assert_connections_returned(container)

    first_success = min(
        e.received - times["thawing"]
        for e in exchanges
        if e.status in (200, 201) and e.sent >= times["thawing"]
    )
    by_path = defaultdict(list)
    for e in during:
        by_path["/health/ready" if e.path == "/health/ready" else e.method].append(e.duration)
    print(
        f"\nfrozen {FREEZE_SECONDS:.0f} s: {len(during)} requests answered 503 meanwhile, "
        + ", ".join(f"{k} slowest {max(v):.2f} s" for k, v in sorted(by_path.items()))
        + f" (deadlines: thread wait {FROZEN_THREAD_WAIT}, request {FROZEN_REQUEST_TIMEOUT}, "
        f"ready {FROZEN_READY_TIMEOUT}); first success {first_success:.2f} s after SIGCONT; "
        f"{Counter(e.body['detail'] for e in during if e.status == 503)}"
    )


# --- one chat's row lock held: the hot chat --------------------------------------------------

LOCK_TIMEOUT = 1.0
HOT_THREAD_WAIT = 0.5
HOT_REQUEST_TIMEOUT = 4.0
WRITES_IN_FLIGHT = 2
HOLD_SECONDS = 3.0
AFTER_RELEASE_SECONDS = 2.0
POSTERS = 50
OBSERVERS = 2
P99_BOUND_SECONDS = 0.5


async def post(http: httpx.AsyncClient, chat_id: int, text: str) -> Exchange:
    """`exchange` for an async client: post `text` to the chat and record it."""
    path = f"/chats/{chat_id}/messages/"
    sent = time.monotonic()
    try:
        response = await http.post(path, json={"text": text})
    except httpx.HTTPError as exc:
        received = time.monotonic()
        return Exchange("POST", path, chat_id, text, None, None, None, sent, received, repr(exc))
    received = time.monotonic()
    json = response.headers.get("content-type", "").startswith("application/json")
    body = response.json() if json else response.text
    retry_after = response.headers.get("Retry-After")
    return Exchange(
        "POST", path, chat_id, text, response.status_code, retry_after, body, sent, received
    )


def row_locked(database_url: str, chat_id: int) -> AbstractContextManager[Connection]:
    """The chat's row locked by a transaction of another client, until the block ends."""
    return held(database_url, "SELECT id FROM chats WHERE id = :id FOR UPDATE", id=chat_id)


def test_a_chat_whose_row_lock_is_stuck_does_not_starve_the_others(own_database: str) -> None:
    container = container_of(
        own_database,
        lock_timeout=LOCK_TIMEOUT,
        chat_writes_in_flight=WRITES_IN_FLIGHT,
        thread_wait_timeout=HOT_THREAD_WAIT,
        request_timeout=HOT_REQUEST_TIMEOUT,
    )
    with served(container) as base_url:
        hot = create_chat(base_url, "hot")
        cold = create_chat(base_url, "cold")
        hot_posts, observed = Recorder(), Recorder()
        go, stop = threading.Event(), threading.Event()
        times: dict[str, float] = {}

        def conductor() -> None:
            try:
                with row_locked(own_database, hot):
                    times["locked"] = time.monotonic()
                    go.set()
                    time.sleep(HOLD_SECONDS)
                    times["releasing"] = time.monotonic()
                time.sleep(AFTER_RELEASE_SECONDS)
            finally:
                go.set()
                stop.set()

        async def post_to_hot_chat(http: httpx.AsyncClient, worker: int) -> None:
            n = 0
            while not stop.is_set():
                hot_posts.add(await post(http, hot, f"hot w{worker} #{n}"))
                n += 1
                await asyncio.sleep(random.uniform(0, 0.05))  # out of step with the others

        async def post_all() -> None:
            limits = httpx.Limits(max_connections=POSTERS)
            async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
                await asyncio.to_thread(go.wait)
                await asyncio.gather(*(post_to_hot_chat(http, w) for w in range(POSTERS)))

        def posters() -> None:
            # One thread: fifty client threads would fight the server for the GIL (it is in
            # this process), and the latencies measured would be theirs.
            asyncio.run(post_all())

        def observer(worker: int) -> Callable[[], None]:
            def run() -> None:
                with new_client(base_url) as http:  # made before: it costs CPU
                    go.wait()
                    n = 0
                    while not stop.is_set():
                        body = {"text": f"cold w{worker} #{n}"}
                        observed.add(exchange(http, "GET", f"/chats/{cold}?limit=5", cold))
                        observed.add(exchange(http, "GET", "/health/ready", cold))
                        observed.add(exchange(http, "POST", f"/chats/{cold}/messages/", cold, body))
                        n += 1
                        stop.wait(0.01)

            return run

        run_in_threads(
            [
                conductor,
                posters,
                *(observer(w) for w in range(OBSERVERS)),
            ]
        )
        posts, others = hot_posts.all(), observed.all()
        assert_answered(posts + others)

        # The other chat and the probe: served all along, and fast.
        assert all(e.status in (200, 201) for e in others), [e.describe() for e in others][:10]
        held = [e for e in others if e.received <= times["releasing"]]
        assert len(held) >= MIN_EXCHANGES_PER_PHASE, len(held)
        latencies = [e.duration for e in held]
        assert percentile(latencies, 0.99) < P99_BOUND_SECONDS, percentile(latencies, 0.99)

        # The hot chat: 503 while locked, each within its wait for a turn plus the lock timeout
        # for each lock it waits for: the second write in flight waits behind the first (for
        # its tuple lock), then for the row; PostgreSQL times each wait on its own.
        locked = [e for e in posts if e.received <= times["releasing"]]
        assert len(locked) >= POSTERS, len(locked)
        assert all(e.status == 503 for e in locked), [e.describe() for e in locked][:10]
        bound = HOT_THREAD_WAIT + WRITES_IN_FLIGHT * LOCK_TIMEOUT + MARGIN
        slow = [e.describe() for e in locked if e.duration > bound]
        assert not slow, slow[:10]
        after = [e for e in posts if e.sent >= times["releasing"] + 0.5]
        assert sum(e.status == 201 for e in after) >= MIN_EXCHANGES_PER_PHASE

        # Exact counts: every 201 stored once, no 503 stored, the read model agrees.
        every_post = posts + [e for e in others if e.is_post]
        acknowledged, refused = assert_stored_exactly(own_database, every_post)
        with inspector(own_database) as engine:
            for chat in (hot, cold):
                expected = sum(e.status == 201 for e in every_post if e.chat_id == chat)
                assert count_rows(engine, "messages", chat_id=chat) == expected
                assert count_rows(engine, "chat_views", chat_id=chat, message_count=expected) == 1
        assert_connections_returned(container)

    details = Counter(e.body["detail"] for e in locked)
    print(
        f"\nhot chat locked {HOLD_SECONDS:.0f} s, {POSTERS} posters: {len(locked)} posts "
        f"answered 503 ({dict(details)}), slowest {max(e.duration for e in locked):.2f} s; "
        f"other chat and /health/ready: {len(held)} requests, p50 "
        f"{percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f}"
        f" ms, max {max(latencies) * 1000:.1f} ms; {acknowledged} posts answered 201 in "
        f"all, each stored exactly once, {refused} refused and not stored"
    )
    assert CHAT_BUSY in details  # most waited for a turn, holding no thread


# --- handler threads all busy; a handler past REQUEST_TIMEOUT --------------------------------

THREADS = 2
BUSY_THREAD_WAIT = 0.3
BUSY_REQUEST_TIMEOUT = 1.0


class BlockingReads:
    """GET /chats/{id}'s handler, blocking its thread until released, as a stuck query would."""

    def __init__(self, container: Container) -> None:
        self._read = container.get_chat_document()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, query: GetChat) -> Any:
        self.entered.release()
        self.release.wait(30)  # released by the test; bounded all the same
        return self._read(query)


def test_busy_threads_and_a_handler_past_its_deadline_are_503_not_a_hang(
    own_database: str,
) -> None:
    container = container_of(
        own_database,
        worker_threads=THREADS,
        thread_wait_timeout=BUSY_THREAD_WAIT,
        request_timeout=BUSY_REQUEST_TIMEOUT,
        ready_timeout=BUSY_REQUEST_TIMEOUT,
        loop_connections=0,  # the reads below hold handler threads, as they do then
    )
    with served(container) as base_url:
        chat = create_chat(base_url, "busy")
        blocking = BlockingReads(container)
        blocked: list[Exchange] = []
        with container.get_chat_document.override(providers.Object(blocking)):

            def stuck() -> None:
                with new_client(base_url) as http:
                    blocked.append(exchange(http, "GET", f"/chats/{chat}", chat))

            holders = [threading.Thread(target=stuck) for _ in range(THREADS)]
            for holder in holders:
                holder.start()
            for _ in range(THREADS):
                assert blocking.entered.acquire(timeout=5)
            with new_client(base_url) as http:
                # Every handler thread taken: a 503 after the thread wait, not a hang.
                waiting = [
                    exchange(http, "POST", f"/chats/{chat}/messages/", chat, {"text": "no thread"}),
                    exchange(http, "GET", "/health/ready", chat),
                ]
                live = http.get("/health/live")  # needs no thread
            for holder in holders:
                holder.join(timeout=5)
            blocking.release.set()
        assert_answered(blocked + waiting)
        assert live.status_code == 200
        for e in waiting:
            assert e.status == 503, e.describe()
            assert e.body == {"detail": NO_THREAD}, e.describe()
            assert BUSY_THREAD_WAIT <= e.duration <= BUSY_THREAD_WAIT + MARGIN, e.describe()
        # The stuck handlers: 503 at REQUEST_TIMEOUT, their threads left to finish.
        for e in blocked:
            assert e.status == 503, e.describe()
            assert e.body == {"detail": TIMED_OUT}, e.describe()
            assert BUSY_REQUEST_TIMEOUT <= e.duration <= BUSY_REQUEST_TIMEOUT + MARGIN
        # Once they have returned, both threads serve again: no token was lost.
        answered = []
        for _ in range(20):
            with new_client(base_url) as http:
                answered = [http.get(f"/chats/{chat}").status_code for _ in range(THREADS * 3)]
            if answered == [200] * (THREADS * 3):
                break
            time.sleep(0.1)
        assert answered == [200] * (THREADS * 3)
        assert count_rows_of(own_database, chat) == 0  # "no thread" never ran
        assert_connections_returned(container)
    print(
        f"\nthreads all busy: 503 after {max(e.duration for e in waiting):.2f} s "
        f"(THREAD_WAIT_TIMEOUT {BUSY_THREAD_WAIT}); a stuck handler 503 after "
        f"{max(e.duration for e in blocked):.2f} s (REQUEST_TIMEOUT {BUSY_REQUEST_TIMEOUT})"
    )


def count_rows_of(database_url: str, chat_id: int) -> int:
    with inspector(database_url) as engine:
        return count_rows(engine, "messages", chat_id=chat_id)


def test_a_post_answered_503_at_its_deadline_rolls_back_when_its_thread_returns(
    own_database: str,
) -> None:
    """A post stuck behind a lock past REQUEST_TIMEOUT (the lock timeout longer) gets 503, its
    statement cancelled: its thread is free while the lock is still held, and nothing is
    stored, then or once the lock goes."""
    container = container_of(
        own_database,
        lock_timeout=30.0,
        request_timeout=BUSY_REQUEST_TIMEOUT,
    )
    with served(container) as base_url, new_client(base_url) as http:
        chat = create_chat(base_url, "abandoned")
        with row_locked(own_database, chat):
            late = exchange(http, "POST", f"/chats/{chat}/messages/", chat, {"text": "late"})
            assert_connections_returned(container)  # the thread has returned: rolled back
        assert_answered([late])
        assert late.body == {"detail": STATEMENT_CANCELLED}, late.describe()
        assert late.duration <= BUSY_REQUEST_TIMEOUT + MARGIN
        assert count_rows_of(own_database, chat) == 0
        posted = http.post(f"/chats/{chat}/messages/", json={"text": "next"})
        assert posted.status_code == 201, posted.text
        assert posted.json()["seq"] == 1  # the abandoned post used no seq up


# --- SIGTERM while a handler thread is stuck on a frozen database ----------------------------

GRACE_SECONDS = 2
EXIT_BOUND_SECONDS = GRACE_SECONDS + EXIT_WAIT_SECONDS + 2.0


def test_sigterm_with_a_thread_stuck_on_a_frozen_database_exits_all_the_same(
    own_cluster: PostgresCluster, own_database: str, tmp_path: Path
) -> None:
    with (
        serving(
            own_database,
            tmp_path,
            REQUEST_TIMEOUT="1",
            GRACEFUL_SHUTDOWN_TIMEOUT=str(GRACE_SECONDS),
        ) as server,
        new_client(server.base_url) as http,
    ):
        chat = create_chat(server.base_url, "stopping")
        with frozen(own_cluster):
            stuck = http.get(f"/chats/{chat}")  # its thread stays blocked in the driver
            stopping = time.monotonic()
            server.terminate()
            status = server.wait(EXIT_BOUND_SECONDS)
            exited_after = time.monotonic() - stopping
    assert stuck.status_code == 503, stuck.text
    assert status == 0, server.output()
    print(f"\nSIGTERM with a thread stuck on a frozen database: exited after {exited_after:.2f} s")
