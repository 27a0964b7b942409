"""32 concurrent clients post to 4 chats while others read and one deletes a chat.

Every 201 is readable afterwards (or was deleted with its chat), the read model's counts are
exact, and the server's memory and open connections return to their idle level after the
load stops. The load is bounded in count and in time; nothing here asserts a speed.
"""

import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.pool import QueuePool

from infrastructure.container import Container
from tests.reliability.load import (
    MIB,
    Exchange,
    Recorder,
    count_connections,
    create_chat,
    database_name,
    exchange,
    open_fds,
    rss_bytes,
    server_connections,
    stored_messages,
)
from tests.support.database import inspector
from tests.support.servers import container_for, new_client, served
from tests.support.threads import run_in_threads

POSTERS = 32
READERS = 4
CHATS = 4
POSTS_PER_POSTER = 25
WARMUP_POSTS_PER_POSTER = 5
READ_LIMIT = 100
READER_PAUSE_SECONDS = 0.01
LOAD_DEADLINE_SECONDS = 60.0

# Small pools, so that the load needs the overflow and the idle level is well below the peak.
POOL_SIZE = 4
MAX_OVERFLOW = 8
ENGINES = 2  # the write side and the read side each have a pool
# Live delivery's hint channel keeps its own, outside the pools: one connection that LISTENs
# and sends the batched NOTIFYs (infrastructure/hints/channel.py).
HINT_CONNECTIONS = 1
# The event loop's own connections (infrastructure/loop_database.py): none here, so that
# every read and post goes through the engines' pools, whose overflow this test is about
# (the loop's connections under concurrent posts: test_deadlines.py's hot chat, exact counts).
LOOP_CONNECTIONS = 0
IDLE_CONNECTIONS = POOL_SIZE * ENGINES + HINT_CONNECTIONS + LOOP_CONNECTIONS
POOL_TIMEOUT = 5.0

# Memory after the load may exceed the idle level (taken after a warm-up of the same shape,
# so that caches, thread stacks and malloc arenas already exist) by at most this much. This
# process's RSS grows by 7 to 10 MiB over one full load (the allocator keeping freed memory,
# and this test's records), and levels off at about +12 MiB after a dozen loads, with no
# more live objects: noise, not a leak. 30 MiB over about a thousand requests still fails a
# service that keeps some 30 KiB per request (a response body, a session with its objects);
# smaller leaks of objects are caught by OBJECT_TOLERANCE below.
RSS_TOLERANCE_BYTES = 30 * MIB
# Live Python objects (those the garbage collector tracks) may exceed the idle level by this
# many, not counting the records this test keeps. The load makes 800 posts and some hundreds
# of reads, so keeping even one object per post (or per request) fails; measured runs end
# within a few dozen objects of the idle level (the server's worker threads come and go).
OBJECT_TOLERANCE = 300
# Open file descriptors may exceed the idle level by this many: sockets still closing.
FD_TOLERANCE = 4
SETTLE_SECONDS = 5.0  # bounded wait for connections and sockets to close after the load


@dataclass
class Load:
    """One run of the load: what every client saw, and the delete's exchange."""

    exchanges: list[Exchange]
    deleted: Exchange
    peak_connections: int


@pytest.fixture(scope="module")
def stressed(own_database: str) -> Iterator[tuple[Container, str]]:
    container = container_for(
        own_database,
        # More handler threads than a pool holds: the load needs the overflow.
        worker_threads=2 * POOL_SIZE,
        db_pool_size=POOL_SIZE,
        db_max_overflow=MAX_OVERFLOW,
        db_pool_timeout=POOL_TIMEOUT,
        loop_connections=LOOP_CONNECTIONS,
        db_connect_timeout=2,
        db_statement_timeout=5,
        retry_after=1,
        access_log=False,  # captured log records would count as the server's memory
    )
    with served(container) as base_url:
        yield container, base_url


def run_load(base_url: str, engine: Engine, database: str, tag: str, posts_per_poster: int) -> Load:
    """Posters, readers and one deleter at once; returns everything they saw."""
    chats = [create_chat(base_url, f"{tag} {i}") for i in range(CHATS)]
    doomed = chats[-1]
    recorder = Recorder()
    posts_total = POSTERS * posts_per_poster
    posted = 0
    posted_lock = threading.Lock()
    halfway = threading.Event()
    posters_done = threading.Event()
    deleted: list[Exchange] = []
    peak = 0
    # Readers and the monitor stop with the posters, or at this deadline if a poster is stuck.
    deadline = time.monotonic() + LOAD_DEADLINE_SECONDS

    def poster(p: int) -> Callable[[], None]:
        def run() -> None:
            nonlocal posted
            with new_client(base_url) as http:
                for k in range(posts_per_poster):
                    chat = chats[(p + k) % CHATS]
                    body = {"text": f"{tag} p{p} k{k}"}
                    recorder.add(exchange(http, "POST", f"/chats/{chat}/messages/", chat, body))
                    with posted_lock:
                        posted += 1
                        if posted * 2 >= posts_total:
                            halfway.set()
                        if posted == posts_total:
                            posters_done.set()

        return run

    def reader(r: int) -> Callable[[], None]:
        def run() -> None:
            with new_client(base_url) as http:
                i = 0
                while not posters_done.is_set() and time.monotonic() < deadline:
                    chat = chats[(r + i) % CHATS]
                    path = f"/chats/{chat}?limit={READ_LIMIT}"
                    recorder.add(exchange(http, "GET", path, chat, summarize=read_summary))
                    i += 1
                    posters_done.wait(READER_PAUSE_SECONDS)

        return run

    def deleter() -> None:
        assert halfway.wait(timeout=60), "the posters never got halfway"
        with new_client(base_url) as http:
            deleted.append(exchange(http, "DELETE", f"/chats/{doomed}", doomed))

    def monitor() -> None:
        """Samples the server's connections on the database while the load runs."""
        nonlocal peak
        with engine.connect() as connection:
            while not posters_done.wait(0.02) and time.monotonic() < deadline:
                peak = max(peak, count_connections(connection, database))

    workers = [poster(p) for p in range(POSTERS)]
    workers += [reader(r) for r in range(READERS)]
    run_in_threads([*workers, deleter, monitor])
    assert len(deleted) == 1
    return Load(recorder.all(), deleted[0], peak)


def read_summary(body: Any) -> dict[str, int]:
    """What the readers' checks need of a chat: its count, and how many messages came."""
    return {"message_count": body["message_count"], "messages": len(body["messages"])}


def settle() -> None:
    gc.collect()
    time.sleep(0.5)
    gc.collect()


def wait_for(check: Callable[[], bool], seconds: float = SETTLE_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_concurrent_posts_reads_and_a_delete(
    stressed: tuple[Container, str], own_database: str
) -> None:
    container, base_url = stressed
    database = database_name(own_database)
    with inspector(own_database) as engine:
        # Warm-up: the same shape, smaller, so that what is allocated once is allocated.
        run_load(base_url, engine, database, "warm-up", WARMUP_POSTS_PER_POSTER)
        settle()
        idle_objects = len(gc.get_objects())
        assert wait_for(lambda: server_connections(engine, database) <= IDLE_CONNECTIONS)
        idle_rss = rss_bytes()
        idle_fds = open_fds()
        idle_connections = server_connections(engine, database)

        load = run_load(base_url, engine, database, "stress", POSTS_PER_POSTER)

        settle()
        # Less what this test holds itself: each record, and its body when that is a container.
        after_objects = len(gc.get_objects()) - sum(
            1 + gc.is_tracked(e.body) for e in load.exchanges
        )
        connections_closed = wait_for(
            lambda: server_connections(engine, database) <= IDLE_CONNECTIONS
        )
        after_connections = server_connections(engine, database)
        fds_closed = wait_for(lambda: open_fds() <= idle_fds + FD_TOLERANCE)
        after_fds = open_fds()
        after_rss = rss_bytes()
        container.job_runner().run_until_idle()  # the deleted chat's purge, a background job
        stored = stored_messages(engine)
        with engine.connect() as connection:
            views = {
                int(row.chat_id): int(row.message_count)
                for row in connection.execute(text("SELECT chat_id, message_count FROM chat_views"))
            }

    exchanges = load.exchanges
    deleted = load.deleted
    doomed = deleted.chat_id
    posts = [e for e in exchanges if e.is_post]
    reads = [e for e in exchanges if not e.is_post]
    chats = sorted({e.chat_id for e in posts})
    survivors = [chat for chat in chats if chat != doomed]
    print(
        f"\nstress: {len(posts)} posts {dict(Counter(e.status for e in posts))}, "
        f"{len(reads)} reads {dict(Counter(e.status for e in reads))}, "
        f"slowest {max(e.duration for e in exchanges):.2f} s; "
        f"connections idle {idle_connections}, peak {load.peak_connections}, "
        f"after {after_connections}; fds idle {idle_fds}, after {after_fds}; "
        f"RSS idle {idle_rss / MIB:.1f} MiB, after {after_rss / MIB:.1f} MiB "
        f"({(after_rss - idle_rss) / MIB:+.1f} MiB); "
        f"live objects {after_objects - idle_objects:+d}"
    )

    # The delete worked, while posts were still coming in.
    assert deleted.status == 204, deleted.describe()
    assert any(e.sent > deleted.received for e in posts if e.chat_id == doomed)

    # Every post got 201, except those to the deleted chat that came after its delete (404).
    assert len(posts) == POSTERS * POSTS_PER_POSTER
    odd = [e.describe() for e in posts if e.status not in (201, 404)]
    assert not odd, odd[:10]
    wrong_404 = [
        e.describe()
        for e in posts
        if e.status == 404 and (e.chat_id != doomed or e.received < deleted.sent)
    ]
    assert not wrong_404, wrong_404[:10]
    # A 201 on the deleted chat committed before the delete did, so was sent before it ended.
    late_201 = [
        e.describe()
        for e in posts
        if e.status == 201 and e.chat_id == doomed and e.sent > deleted.received
    ]
    assert not late_201, late_201[:10]

    # Readers saw consistent chats: 200 with the count and the last messages, or 404 once
    # the chat was being deleted.
    assert len(reads) >= READERS, len(reads)
    for e in reads:
        if e.status == 404:
            assert e.chat_id == doomed, e.describe()
            assert e.received > deleted.sent, e.describe()
            continue
        assert e.status == 200, e.describe()
        assert e.body["messages"] == min(READ_LIMIT, e.body["message_count"]), e.describe()

    # The store: each surviving chat holds exactly its acknowledged messages, once each; the
    # deleted chat holds nothing, not even the messages acknowledged before its delete.
    acknowledged = {e.posted: e for e in posts if e.status == 201}
    rows_by_text = Counter(body for _, _, body in stored if body.startswith("stress "))
    assert not [t for t, n in rows_by_text.items() if n > 1], "duplicated messages"
    for chat in survivors:
        expected = {t for t, e in acknowledged.items() if e.chat_id == chat}
        rows = {(message_id, body) for message_id, chat_id, body in stored if chat_id == chat}
        assert rows == {(acknowledged[t].body["id"], t) for t in expected}, chat
        assert views[chat] == len(expected), (chat, views[chat], len(expected))
    assert not [row for row in stored if row[1] == doomed]
    assert doomed not in views

    # Through the service: exact counts, and the deleted chat is gone.
    with new_client(base_url) as http:
        for chat in survivors:
            shown = http.get(f"/chats/{chat}?limit={READ_LIMIT}")
            assert shown.status_code == 200, shown.text
            count = sum(1 for e in acknowledged.values() if e.chat_id == chat)
            assert shown.json()["message_count"] == count, (chat, shown.json()["message_count"])
            newest = sorted(
                (e.body["id"], t) for t, e in acknowledged.items() if e.chat_id == chat
            )[-READ_LIMIT:]
            shown_ids = [(m["id"], m["text"]) for m in shown.json()["messages"]]
            assert shown_ids == newest, chat
        assert http.get(f"/chats/{doomed}").status_code == 404

    # Connections: the load needed the overflow, and the overflow was closed after it.
    assert load.peak_connections > IDLE_CONNECTIONS, load.peak_connections
    assert connections_closed, (after_connections, IDLE_CONNECTIONS)
    for engine_provider in (container.write_engine, container.read_engine):
        pool = engine_provider().pool
        assert isinstance(pool, QueuePool), pool
        assert pool.checkedout() == 0, pool.status()
        assert pool.checkedin() <= POOL_SIZE, pool.status()
    assert fds_closed, (after_fds, idle_fds)

    # Memory: back near the idle level, not grown with the work done.
    assert after_objects <= idle_objects + OBJECT_TOLERANCE, (idle_objects, after_objects)
    assert after_rss <= idle_rss + RSS_TOLERANCE_BYTES, (idle_rss / MIB, after_rss / MIB)
