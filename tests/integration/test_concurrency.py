"""Concurrent clients against the live server: nothing lost, nothing duplicated, one order.

Every loop is bounded in count and in time; no test asserts how long anything took.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from sqlalchemy import Engine, text

from commands.create_chat import CreateChat
from commands.post_message import PostMessage, PostMessageHandler, PostMessageResult
from domain.principals import LOCAL
from domain.rules import MAX_LIMIT
from infrastructure.container import Container
from infrastructure.unit_of_work import UnitOfWork
from tests.integration.helpers import (
    TimedResponse,
    assert_non_decreasing,
    stored_messages,
    timed_request,
)
from tests.support.clocks import StepClock
from tests.support.database import OTHER_SESSIONS, count_rows
from tests.support.threads import run_in_threads

THREADS = 16
POSTS_PER_THREAD = 15
HTTP_TIMEOUT_SECONDS = 60.0


def new_client(server_url: str) -> httpx.Client:
    return httpx.Client(base_url=server_url, timeout=HTTP_TIMEOUT_SECONDS)


def create_chat(server_url: str, title: str = "busy chat") -> int:
    with new_client(server_url) as http:
        response = http.post("/chats/", json={"title": title})
    assert response.status_code == 201, response.text
    chat_id = response.json()["id"]
    assert isinstance(chat_id, int)
    return chat_id


def assert_consistent(detail: dict[str, Any], limit: int) -> None:
    """A chat as GET shows it is one snapshot: its counters agree with its messages."""
    messages = detail["messages"]
    assert len(messages) == min(limit, detail["message_count"])
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    if messages:
        assert detail["last_message_at"] == messages[-1]["created_at"]
    else:
        assert detail["last_message_at"] is None


def poster(
    server_url: str,
    chat_id: int,
    texts: list[str],
    results: list[TimedResponse],
    read_back: bool = False,
) -> Callable[[], None]:
    """A worker that posts `texts` in order on its own connection, recording each exchange.

    With `read_back`, each 201 is followed by a GET that must already show the message.
    """

    def run() -> None:
        with new_client(server_url) as http:
            for text in texts:
                exchange = timed_request(
                    http, "POST", f"/chats/{chat_id}/messages/", {"text": text}, text
                )
                results.append(exchange)
                if read_back and exchange.status_code == 201:
                    response = http.get(f"/chats/{chat_id}", params={"limit": MAX_LIMIT})
                    assert response.status_code == 200
                    detail = response.json()
                    assert_consistent(detail, MAX_LIMIT)
                    shown = {m["id"]: m["text"] for m in detail["messages"]}
                    assert shown.get(exchange.body["id"]) == text, "a 201 message is not readable"

    return run


def assert_linearizable(order: dict[str, int], exchanges: list[TimedResponse]) -> None:
    """If a post was answered before another was sent, it comes first in the chat's order."""
    by_position = sorted(exchanges, key=lambda exchange: order[exchange.sent_text])
    for i, earlier in enumerate(by_position):
        for later in by_position[i + 1 :]:
            assert not later.received < earlier.sent, (
                f"{later.sent_text!r} was answered before {earlier.sent_text!r} was sent, "
                f"yet comes after it in the chat's order"
            )


def test_concurrent_posts_to_one_chat_form_one_order(container: Container, server_url: str) -> None:
    chat_id = create_chat(server_url)
    texts = [[f"t{t:02d}-{n:02d}" for n in range(POSTS_PER_THREAD)] for t in range(THREADS)]
    results: list[list[TimedResponse]] = [[] for _ in range(THREADS)]
    run_in_threads([poster(server_url, chat_id, texts[t], results[t]) for t in range(THREADS)])

    exchanges = [exchange for thread in results for exchange in thread]
    total = THREADS * POSTS_PER_THREAD
    assert len(exchanges) == total
    assert sorted({e.status_code for e in exchanges}) == [201], [
        (e.status_code, e.body) for e in exchanges if e.status_code != 201
    ]
    for exchange in exchanges:
        assert exchange.body["chat_id"] == chat_id
        assert exchange.body["text"] == exchange.sent_text
    response_ids = [e.body["id"] for e in exchanges]
    assert len(set(response_ids)) == total, "two posts were given the same id"
    response_seqs = sorted(e.body["seq"] for e in exchanges)
    assert response_seqs == list(range(1, total + 1)), "the seqs are not 1..N, each once"

    # The whole order, from the read side's own message view: nothing lost or duplicated.
    stored = stored_messages(container.read_engine(), chat_id)
    assert len(stored) == total
    assert sorted(m.text for m in stored) == sorted(t for thread in texts for t in thread)
    assert {m.id: m.text for m in stored} == {e.body["id"]: e.sent_text for e in exchanges}
    ids = [m.id for m in stored]
    assert ids == sorted(ids)
    assert len(set(ids)) == total
    # In id order the seqs run 1..N: ordering by seq is ordering by id, the commit order.
    assert [m.seq for m in stored] == list(range(1, total + 1))
    assert {m.id: m.seq for m in stored} == {e.body["id"]: e.body["seq"] for e in exchanges}
    assert_non_decreasing([m.created_at for m in stored])
    # What each POST answered is what was stored.
    created = {e.body["id"]: e.body["created_at"] for e in exchanges}
    for message in stored:
        assert created[message.id].replace("Z", "+00:00") == message.created_at.isoformat()

    # Each client's own posts keep the order it sent them in...
    order = {message.text: position for position, message in enumerate(stored)}
    for thread in texts:
        positions = [order[text] for text in thread]
        assert positions == sorted(positions)
    # ...and across clients, the order is the order in which the posts committed.
    assert_linearizable(order, exchanges)

    with new_client(server_url) as http:
        response = http.get(f"/chats/{chat_id}", params={"limit": MAX_LIMIT})
    assert response.status_code == 200
    detail = response.json()
    assert detail["message_count"] == total
    assert [m["id"] for m in detail["messages"]] == ids[-MAX_LIMIT:]
    assert [m["seq"] for m in detail["messages"]] == list(range(total - MAX_LIMIT + 1, total + 1))
    assert [m["text"] for m in detail["messages"]] == [m.text for m in stored[-MAX_LIMIT:]]
    assert detail["last_message_at"] == detail["messages"][-1]["created_at"]
    assert count_rows(container.write_engine(), "messages", chat_id=chat_id) == total


def test_concurrent_posts_keep_created_at_in_order_when_the_clock_goes_backwards(
    container: Container, server_url: str
) -> None:
    chat_id = create_chat(server_url)
    clock = StepClock(datetime.now(UTC) + timedelta(days=1), step=timedelta(seconds=-1))
    threads, per_thread = 8, 10
    results: list[list[TimedResponse]] = [[] for _ in range(threads)]
    with container.clock.override(providers.Object(clock)):
        run_in_threads(
            [
                poster(server_url, chat_id, [f"b{t}-{n}" for n in range(per_thread)], results[t])
                for t in range(threads)
            ]
        )
    assert len(clock.readings) == threads * per_thread  # the server did use the fake clock
    assert all(e.status_code == 201 for thread in results for e in thread)

    stored = stored_messages(container.read_engine(), chat_id)
    assert len(stored) == threads * per_thread
    assert_non_decreasing([m.created_at for m in stored])
    # A post reads the clock before it waits for the chat's lock, so the readings need not
    # come in the posts' order; but each message has one of them, and none is later than
    # the first reading: from the post that took it on, every message ties with it (ids
    # break the tie).
    assert {m.created_at for m in stored} <= set(clock.readings)
    assert stored[-1].created_at == clock.readings[0]
    assert [m.seq for m in stored] == list(range(1, threads * per_thread + 1))
    with new_client(server_url) as http:
        detail = http.get(f"/chats/{chat_id}", params={"limit": MAX_LIMIT}).json()
    assert [m["id"] for m in detail["messages"]] == [m.id for m in stored]
    assert detail["message_count"] == threads * per_thread


def lock_waiters(engine: Engine) -> int:
    with engine.connect() as connection:
        waiting = text(f"SELECT count(*) {OTHER_SESSIONS} AND wait_event_type = 'Lock'")
        return int(connection.execute(waiting).scalar_one())


class HeldUnitOfWork(UnitOfWork):
    """Waits at its commit, the chat's lock held, until `release` is set."""

    def __init__(
        self, holding: threading.Event, release: threading.Event, **dependencies: Any
    ) -> None:
        super().__init__(**dependencies)
        self._holding = holding
        self._release = release

    def commit(self) -> None:
        self._holding.set()
        assert self._release.wait(HTTP_TIMEOUT_SECONDS), "never released"
        super().commit()


@pytest.mark.parametrize("key", [None, "behind"], ids=["one statement", "keyed"])
def test_a_post_that_waited_for_the_chat_s_lock_keeps_up_with_the_post_before_it(
    container: Container, key: str | None
) -> None:
    """A post reads the clock before it waits for the chat's lock; once the lock is its own,
    it takes its time from the row as the post before it committed it, not as it was when
    it started to wait. With or without a key to claim between the lock and the insert."""
    chat = container.create_chat()(CreateChat(title="waited", principal=LOCAL))
    ahead = datetime.now(UTC) + timedelta(days=1)
    holding, release = threading.Event(), threading.Event()
    held = PostMessageHandler(
        lambda: HeldUnitOfWork(
            holding,
            release,
            engine=container.write_engine(),
            clock=container.clock(),
            idempotency_ttl=container.settings().idempotency_ttl,
            publisher=container.hint_publisher(),
        ),
        clock=lambda: ahead,
    )
    first: list[PostMessageResult] = []
    second: list[PostMessageResult] = []

    def post_first() -> None:
        first.append(held(PostMessage(chat_id=chat.chat_id, text="ahead", principal=LOCAL)))

    def post_second() -> None:
        assert holding.wait(HTTP_TIMEOUT_SECONDS), "the first post never took the lock"
        behind = PostMessage(
            chat_id=chat.chat_id, text="behind", idempotency_key=key, principal=LOCAL
        )
        second.append(container.post_message()(behind))

    def releaser() -> None:
        assert holding.wait(HTTP_TIMEOUT_SECONDS)
        engine = container.write_engine()
        if engine.dialect.name == "postgresql":
            # SQLite's second post waits at BEGIN, before it reads the clock: no race there.
            deadline = time.monotonic() + HTTP_TIMEOUT_SECONDS
            while not lock_waiters(engine):
                assert time.monotonic() < deadline, "the second post never waited"
                time.sleep(0.01)
        release.set()

    run_in_threads([post_first, post_second, releaser])

    assert [(p.seq, p.created_at) for p in first + second] == [(1, ahead), (2, ahead)]
    stored = stored_messages(container.read_engine(), chat.chat_id)
    assert [(m.seq, m.text, m.created_at) for m in stored] == [
        (1, "ahead", ahead),
        (2, "behind", ahead),
    ]


def test_concurrent_posts_to_several_chats_are_all_counted(
    container: Container, server_url: str
) -> None:
    chats = [create_chat(server_url, f"chat {n}") for n in range(4)]
    per_thread = 10
    threads_per_chat = 4
    plan = [
        (chat_id, [f"c{chat_id}-w{w}-{n}" for n in range(per_thread)])
        for chat_id in chats
        for w in range(threads_per_chat)
    ]
    results: list[list[TimedResponse]] = [[] for _ in plan]
    run_in_threads(
        [
            poster(server_url, chat_id, texts, results[i], read_back=True)
            for i, (chat_id, texts) in enumerate(plan)
        ]
    )

    for (chat_id, _texts), exchanges in zip(plan, results, strict=True):
        assert [e.status_code for e in exchanges] == [201] * per_thread
        assert all(e.body["chat_id"] == chat_id for e in exchanges)
    expected = per_thread * threads_per_chat
    with new_client(server_url) as http:
        for chat_id in chats:
            detail = http.get(f"/chats/{chat_id}", params={"limit": MAX_LIMIT}).json()
            assert_consistent(detail, MAX_LIMIT)
            assert detail["message_count"] == expected
            assert len(detail["messages"]) == expected
            assert all(m["chat_id"] == chat_id for m in detail["messages"])
            stored = stored_messages(container.read_engine(), chat_id)
            assert sorted(m.text for m in stored) == sorted(
                text for plan_chat, texts in plan if plan_chat == chat_id for text in texts
            )
            assert_non_decreasing([m.created_at for m in stored])
            assert [m.seq for m in stored] == list(range(1, expected + 1))  # each chat its own
    assert count_rows(container.write_engine(), "messages") == expected * len(chats)


def test_concurrent_chat_creation_gives_distinct_chats(
    container: Container, server_url: str
) -> None:
    created: list[list[int]] = [[] for _ in range(THREADS)]

    def creator(thread: int) -> Callable[[], None]:
        def run() -> None:
            with new_client(server_url) as http:
                for n in range(5):
                    response = http.post("/chats/", json={"title": f"chat {thread}-{n}"})
                    assert response.status_code == 201, response.text
                    created[thread].append(response.json()["id"])

        return run

    run_in_threads([creator(t) for t in range(THREADS)])
    ids = [chat_id for thread in created for chat_id in thread]
    assert len(ids) == len(set(ids)) == THREADS * 5
    assert count_rows(container.read_engine(), "chat_views") == THREADS * 5


MAX_POSTS_PER_RACER = 200
RACE_SECONDS = 30.0


@pytest.mark.parametrize("round_", range(3))
def test_a_delete_racing_posts_leaves_no_message_behind(
    container: Container, server_url: str, round_: int
) -> None:
    chat_id = create_chat(server_url, f"doomed {round_}")
    racers = 6
    landed = threading.Semaphore(0)
    results: list[list[TimedResponse]] = [[] for _ in range(racers)]
    deletes: list[TimedResponse] = []

    def racer(r: int) -> Callable[[], None]:
        def run() -> None:
            deadline = time.monotonic() + RACE_SECONDS
            refused = 0
            with new_client(server_url) as http:
                for n in range(MAX_POSTS_PER_RACER):
                    if time.monotonic() > deadline:
                        break
                    exchange = timed_request(
                        http, "POST", f"/chats/{chat_id}/messages", {"text": f"r{r}-{n}"}
                    )
                    results[r].append(exchange)
                    if exchange.status_code == 201:
                        landed.release()
                        continue
                    refused += 1
                    if exchange.status_code != 404 or refused == 2:
                        break  # one more post after the first 404, to see it stays gone

        return run

    def deleter() -> None:
        # Delete once the posts are well under way (or give up waiting, still bounded).
        for _ in range(3 * racers):
            if not landed.acquire(timeout=RACE_SECONDS / 10):
                break
        with new_client(server_url) as http:
            deletes.append(timed_request(http, "DELETE", f"/chats/{chat_id}"))

    run_in_threads([racer(r) for r in range(racers)] + [deleter])

    assert [d.status_code for d in deletes] == [204]
    delete = deletes[0]
    exchanges = [exchange for racer_results in results for exchange in racer_results]
    statuses = {e.status_code for e in exchanges}
    assert statuses <= {201, 404}, [(e.status_code, e.body) for e in exchanges]
    assert 201 in statuses  # the delete did race posts that landed
    # The posts that landed committed before the delete, one after another: seqs 1..k.
    landed_seqs = sorted(e.body["seq"] for e in exchanges if e.status_code == 201)
    assert landed_seqs == list(range(1, len(landed_seqs) + 1))
    for exchange in exchanges:
        if exchange.sent > delete.received:
            assert exchange.status_code == 404, "a post sent after the delete returned landed"
        if exchange.status_code == 404:
            assert exchange.received > delete.sent, "a post failed before the delete was sent"

    write = container.write_engine()
    # Every post that landed is the tombstone's to purge: exactly those, none after it.
    assert count_rows(write, "messages", chat_id=chat_id) == len(landed_seqs)
    container.job_runner().run_until_idle()
    assert count_rows(write, "messages", chat_id=chat_id) == 0
    assert count_rows(write, "chats", id=chat_id) == 0
    assert count_rows(write, "chat_views", chat_id=chat_id) == 0
    assert count_rows(container.read_engine(), "message_views", chat_id=chat_id) == 0
    with new_client(server_url) as http:
        assert http.get(f"/chats/{chat_id}").status_code == 404
        after = http.post(f"/chats/{chat_id}/messages/", json={"text": "late"})
        assert after.status_code == 404
    assert count_rows(write, "messages") == 0


RETRIES = 12


def test_replays_take_no_seq_even_when_they_race_the_first_post(
    container: Container, server_url: str
) -> None:
    chat_id = create_chat(server_url)
    path = f"/chats/{chat_id}/messages/"
    key = {"Idempotency-Key": "one-post-many-retries"}
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def retrier() -> None:
        with new_client(server_url) as http:
            response = http.post(path, json={"text": "once"}, headers=key)
        with lock:
            answers.append(response)

    run_in_threads([retrier] * RETRIES)

    assert [response.status_code for response in answers] == [201] * RETRIES
    assert len({response.json()["id"] for response in answers}) == 1
    assert {response.json()["seq"] for response in answers} == {1}
    replayed = Counter(response.headers.get("Idempotent-Replayed") for response in answers)
    assert replayed == Counter({None: 1, "true": RETRIES - 1})
    with new_client(server_url) as http:
        again = http.post(path, json={"text": "once"}, headers=key)
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == answers[0].json()
        following = http.post(path, json={"text": "next"})
        assert following.status_code == 201
    # Every replay took the chat's next seq under its lock, then rolled back: none is used up.
    assert following.json()["seq"] == 2
    stored = stored_messages(container.read_engine(), chat_id)
    assert [(m.seq, m.text) for m in stored] == [(1, "once"), (2, "next")]
    assert count_rows(container.write_engine(), "chats", id=chat_id, last_seq=2) == 1
    assert count_rows(container.read_engine(), "chat_views", chat_id=chat_id, last_seq=2) == 1


def test_concurrent_deletes_of_one_chat_succeed_once(container: Container, server_url: str) -> None:
    chat_id = create_chat(server_url)
    with new_client(server_url) as http:
        for n in range(5):
            assert (
                http.post(f"/chats/{chat_id}/messages/", json={"text": f"m{n}"}).status_code == 201
            )
    statuses: list[int] = []
    lock = threading.Lock()

    def deleter() -> None:
        with new_client(server_url) as http:
            status = http.delete(f"/chats/{chat_id}").status_code
        with lock:
            statuses.append(status)

    run_in_threads([deleter for _ in range(8)])
    assert sorted(statuses) == [204] + [404] * 7
    assert count_rows(container.write_engine(), "jobs", kind="purge_chat") == 1  # one purge
    container.job_runner().run_until_idle()
    assert count_rows(container.write_engine(), "messages") == 0
    assert count_rows(container.write_engine(), "chat_views") == 0
