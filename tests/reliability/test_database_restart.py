"""The PostgreSQL server is restarted under a steady mix of posts and reads.

During the outage clients get only 503 with Retry-After (never a 500, never a hang past a
bound derived from the configured timeouts); within 5 s after the database is back every
request succeeds again; every message acknowledged with 201 is stored exactly once, and no
message that got an error appears later.
"""

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

import pytest

from devtools.postgres_cluster import PostgresCluster
from tests.reliability.load import Exchange, Recorder, create_chat, exchange, stored_messages
from tests.support.database import inspector
from tests.support.servers import container_for, new_client, served
from tests.support.threads import run_in_threads

POOL_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2
STATEMENT_TIMEOUT = 5.0
RETRY_AFTER = 1
# The longest a request may take, down or up: waiting for a pooled connection, then for a
# new one, plus a margin for scheduling on a busy machine (the server shares this process
# with the clients). A request that hangs on a dead socket would take far longer.
REQUEST_BOUND_SECONDS = POOL_TIMEOUT + CONNECT_TIMEOUT + 2.0
RECOVERY_SECONDS = 5.0  # the promise: every request succeeds this long after

CLIENTS = 6
CHATS = 3
PAUSE_SECONDS = 0.02  # between a client's requests: a steady mix, not a flood
STEADY_SECONDS = 2.0
OUTAGE_SECONDS = 3.0
AFTER_SECONDS = 8.0
# Each phase must have seen real traffic, or its assertions would say nothing.
MIN_EXCHANGES_PER_PHASE = 20


@pytest.fixture(scope="module")
def base_url(own_database: str) -> Iterator[str]:
    container = container_for(
        own_database,
        db_pool_timeout=POOL_TIMEOUT,
        db_connect_timeout=CONNECT_TIMEOUT,
        db_statement_timeout=STATEMENT_TIMEOUT,
        retry_after=RETRY_AFTER,
        access_log=False,
    )
    with served(container) as url:
        yield url


def client_loop(
    base_url: str, worker: int, chats: list[int], stop: threading.Event, recorder: Recorder
) -> Callable[[], None]:
    """Posts a uniquely numbered text, then reads the chat it posted to, until told to stop."""

    def run() -> None:
        with new_client(base_url) as http:
            n = 0
            while not stop.is_set():
                chat = chats[(worker + n) % len(chats)]
                text = f"restart w{worker} #{n}"
                path = f"/chats/{chat}/messages/"
                recorder.add(exchange(http, "POST", path, chat, {"text": text}))
                recorder.add(exchange(http, "GET", f"/chats/{chat}?limit=10", chat))
                n += 1
                stop.wait(PAUSE_SECONDS)

    return run


def test_a_database_restart_under_load(
    own_cluster: PostgresCluster, own_database: str, base_url: str
) -> None:
    chats = [create_chat(base_url, f"restart {i}") for i in range(CHATS)]
    recorder = Recorder()
    stop = threading.Event()
    times: dict[str, float] = {}

    def conductor() -> None:
        """Steady load, a fast shutdown, an outage, a start on the same port, recovery."""
        try:
            time.sleep(STEADY_SECONDS)
            times["stopping"] = time.monotonic()
            # Fast shutdown: open sessions are ended, and the shutdown checkpoint keeps every
            # commit. (An immediate shutdown would be a crash, and the throwaway cluster runs
            # with synchronous_commit=off, so it could lose commits already acknowledged.)
            own_cluster.stop()
            times["stopped"] = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            times["starting"] = time.monotonic()
            own_cluster.start()  # returns once pg_isready answers
            times["ready"] = time.monotonic()
            time.sleep(AFTER_SECONDS)
        finally:
            stop.set()

    workers = [client_loop(base_url, w, chats, stop, recorder) for w in range(CLIENTS)]
    run_in_threads([conductor, *workers])
    exchanges = recorder.all()

    # Never a 500, never a dropped connection: 200, 201 or 503, and a 503 says when to retry.
    statuses = Counter(e.status for e in exchanges)
    odd = [e.describe() for e in exchanges if e.status not in (200, 201, 503)]
    assert not odd, (statuses, odd[:10])
    no_retry_after = [e.describe() for e in exchanges if e.status == 503 and not e.retry_after]
    assert not no_retry_after, no_retry_after[:10]
    assert {e.retry_after for e in exchanges if e.status == 503} <= {str(RETRY_AFTER)}
    assert all(e.body == {"detail": "database unavailable"} for e in exchanges if e.status == 503)

    # Never a hang: every request was answered within the bound the settings imply.
    slow = [e.describe() for e in exchanges if e.duration > REQUEST_BOUND_SECONDS]
    assert not slow, (REQUEST_BOUND_SECONDS, slow[:10])

    # Before the restart everything worked.
    steady = [e for e in exchanges if e.received < times["stopping"]]
    assert len(steady) >= MIN_EXCHANGES_PER_PHASE, len(steady)
    assert all(e.status in (200, 201) for e in steady), [e.describe() for e in steady][:10]

    # While the server was down, only 503s.
    down = [e for e in exchanges if e.sent >= times["stopped"] and e.received <= times["starting"]]
    assert len(down) >= MIN_EXCHANGES_PER_PHASE, len(down)
    assert all(e.status == 503 for e in down), [e.describe() for e in down if e.status != 503]

    # From RECOVERY_SECONDS after the server was back, everything works again.
    recovered = [e for e in exchanges if e.sent >= times["ready"] + RECOVERY_SECONDS]
    assert len(recovered) >= MIN_EXCHANGES_PER_PHASE, len(recovered)
    failed_late = [e.describe() for e in recovered if e.status not in (200, 201)]
    assert not failed_late, failed_late[:10]

    # The store: every acknowledged message exactly once, under its id and chat; nothing else.
    posts = [e for e in exchanges if e.is_post]
    acknowledged = {e.posted: e for e in posts if e.status == 201}
    refused = {e.posted for e in posts if e.status != 201}
    assert acknowledged, "no post was acknowledged"
    assert refused, "no post got a 503: the outage was not seen"
    with inspector(own_database) as engine:
        stored = stored_messages(engine)
    by_text: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for message_id, chat_id, stored_text in stored:
        by_text[stored_text].append((message_id, chat_id))
    for posted_text, post in acknowledged.items():
        found = by_text.get(posted_text)
        assert found == [(post.body["id"], post.chat_id)], (posted_text, found)
    appeared = sorted(t for t in refused if t in by_text)
    assert not appeared, f"{len(appeared)} refused posts were stored: {appeared[:10]}"
    assert len(stored) == len(acknowledged)

    # The read model agrees: each chat counts exactly its acknowledged messages.
    with new_client(base_url) as http:
        for chat in chats:
            shown = http.get(f"/chats/{chat}?limit=100")
            assert shown.status_code == 200, shown.text
            expected = sum(1 for e in acknowledged.values() if e.chat_id == chat)
            assert shown.json()["message_count"] == expected, (chat, shown.json())

    report(exchanges, times)


def report(exchanges: list[Exchange], times: dict[str, float]) -> None:
    """The figures of the run, shown with `pytest -s`."""
    failures = [e for e in exchanges if e.status not in (200, 201)]
    last_failure = max(e.received for e in failures)
    first_success = min(
        (e.received for e in exchanges if e.sent >= times["starting"] and e.status in (200, 201)),
        default=float("nan"),
    )
    print(
        f"\nrestart: {len(exchanges)} requests, {len(failures)} got 503; "
        f"stop took {times['stopped'] - times['stopping']:.2f} s, "
        f"start {times['ready'] - times['starting']:.2f} s; "
        f"first success {first_success - times['starting']:.2f} s after the start began; "
        f"last 503 {last_failure - times['ready']:+.2f} s from pg_isready; "
        f"slowest request {max(e.duration for e in exchanges):.2f} s"
    )
