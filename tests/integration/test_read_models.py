"""The read model kept by the projections equals the one rebuilt from the write model."""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dependency_injector import providers

from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage
from domain.errors import ChatNotFound, InvalidInput
from domain.principals import LOCAL
from infrastructure.container import Container
from infrastructure.rebuild import rebuild_read_models
from queries.get_chat import GetChat
from queries.get_messages_after import GetMessagesAfter
from tests.integration.helpers import chat_views_snapshot, execute
from tests.support.clocks import StepClock
from tests.support.database import count_rows
from tests.support.threads import run_in_threads


@dataclass
class Expected:
    """What the read model should say, tracked on the side while commands run."""

    counts: dict[int, int] = field(default_factory=dict)  # live chat -> its message count
    deleted: set[int] = field(default_factory=set)

    def chats_with_messages(self) -> int:
        return sum(1 for count in self.counts.values() if count > 0)

    def empty_chats(self) -> int:
        return sum(1 for count in self.counts.values() if count == 0)


def run_random_commands(container: Container, seed: int, steps: int = 150) -> Expected:
    """A seeded random mix of creates, posts and deletes, some refused, through the handlers."""
    rng = random.Random(seed)
    expected = Expected()
    create = container.create_chat()
    post = container.post_message()
    delete = container.delete_chat()
    for step in range(steps):
        live = sorted(expected.counts)
        roll = rng.random()
        if not live or roll < 0.15:
            created = create(CreateChat(title=f"  chat {seed}-{step} ", principal=LOCAL))
            expected.counts[created.chat_id] = 0
        elif roll < 0.80:
            chat_id = rng.choice(live)
            post(
                PostMessage(
                    chat_id=chat_id, text=f"message {step} " * rng.randint(1, 5), principal=LOCAL
                )
            )
            expected.counts[chat_id] += 1
        elif roll < 0.88:
            chat_id = rng.choice(live)
            delete(DeleteChat(chat_id=chat_id, principal=LOCAL))
            del expected.counts[chat_id]
            expected.deleted.add(chat_id)
        elif roll < 0.94 and expected.deleted:
            with pytest.raises(ChatNotFound):
                post(
                    PostMessage(
                        chat_id=rng.choice(sorted(expected.deleted)), text="late", principal=LOCAL
                    )
                )
        else:
            with pytest.raises(InvalidInput):
                post(
                    PostMessage(
                        chat_id=rng.choice(live), text=" " * rng.randint(0, 3), principal=LOCAL
                    )
                )
    return expected


def assert_matches(container: Container, expected: Expected) -> None:
    """The read model holds exactly the live chats, each with its exact message count and,
    since no message is ever deleted alone, as many seqs."""
    rows = chat_views_snapshot(container.write_engine())
    assert [row[0] for row in rows] == sorted(expected.counts)
    get_chat = container.get_chat()
    read_after = container.get_messages_after()
    for chat_id, count in expected.counts.items():
        assert get_chat(GetChat(chat_id=chat_id, principal=LOCAL)).message_count == count
        assert (
            read_after(GetMessagesAfter(chat_id=chat_id, after=0, principal=LOCAL)).last_seq
            == count
        )
    for chat_id in expected.deleted:
        with pytest.raises(ChatNotFound):
            get_chat(GetChat(chat_id=chat_id, principal=LOCAL))


def rebuild_and_compare(container: Container) -> list[tuple[object, ...]]:
    """Rebuild the read model and assert it is what the projections had made of it."""
    engine = container.write_engine()
    projected = chat_views_snapshot(engine)
    assert rebuild_read_models(engine) == len(projected)
    rebuilt = chat_views_snapshot(engine)
    assert rebuilt == projected
    return rebuilt


@pytest.mark.parametrize("seed", [7, 2026, 31337])
def test_projected_read_model_equals_the_rebuilt_one(
    container: Container, client: httpx.Client, seed: int
) -> None:
    expected = run_random_commands(container, seed)

    # Part of the history with a clock that goes backwards, part over HTTP.
    clock = StepClock(datetime.now(UTC) + timedelta(days=30), step=timedelta(seconds=-1))
    with container.clock.override(providers.Object(clock)):
        expected_more = run_random_commands(container, seed + 1, steps=40)
    expected.counts.update(expected_more.counts)
    expected.deleted |= expected_more.deleted

    created = client.post("/chats/", json={"title": "over HTTP"})
    assert created.status_code == 201
    http_chat = created.json()["id"]
    for n in range(3):
        assert (
            client.post(f"/chats/{http_chat}/messages/", json={"text": f"h{n}"}).status_code == 201
        )
    target = max(expected.counts, key=lambda chat_id: expected.counts[chat_id])
    assert client.post(f"/chats/{target}/messages", json={"text": "over HTTP"}).status_code == 201
    expected.counts[http_chat] = 3
    expected.counts[target] += 1
    empty = container.create_chat()(CreateChat(title="never written to", principal=LOCAL)).chat_id
    expected.counts[empty] = 0

    # Non-trivial: chats with messages, empty chats and deleted chats all took part.
    assert expected.chats_with_messages() >= 3
    assert expected.empty_chats() >= 1
    assert len(expected.deleted) >= 2

    # With the deleted chats' purges still waiting (their rows but tombstones), then done.
    assert_matches(container, expected)
    rebuild_and_compare(container)
    assert_matches(container, expected)
    # Some purges were scheduled by the clock that ran a month ahead: run them all.
    later = datetime.now(UTC) + timedelta(days=60)
    with container.clock.override(providers.Object(lambda: later)):
        container.job_runner().run_until_idle()
    assert count_rows(container.write_engine(), "messages") == sum(expected.counts.values())
    rebuild_and_compare(container)
    # A rebuild of a rebuilt read model changes nothing either.
    rebuild_and_compare(container)


@dataclass(frozen=True, slots=True)
class Corruption:
    name: str
    statements: tuple[str, ...]


CORRUPTIONS = [
    Corruption("wrong count", ("UPDATE chat_views SET message_count = 999",)),
    Corruption("lost row", ("DELETE FROM chat_views WHERE chat_id = :busy",)),
    Corruption("all rows lost", ("DELETE FROM chat_views",)),
    Corruption("wrong title", ("UPDATE chat_views SET title = 'corrupted' WHERE chat_id = :busy",)),
    Corruption("lost last message", ("UPDATE chat_views SET last_message_at = NULL",)),
    Corruption(
        "stale last message",
        ("UPDATE chat_views SET last_message_at = created_at WHERE chat_id = :busy",),
    ),
    Corruption(
        "row of a deleted chat",
        (
            "INSERT INTO chat_views (chat_id, title, created_at, message_count, last_activity_at) "
            "SELECT :gone, title, created_at, 5, created_at FROM chat_views WHERE chat_id = :busy",
        ),
    ),
    Corruption("lost preview", ("UPDATE chat_views SET last_message_preview = NULL",)),
    Corruption("stale activity", ("UPDATE chat_views SET last_activity_at = created_at",)),
    Corruption("stale last seq", ("UPDATE chat_views SET last_seq = last_seq - 1",)),
    Corruption(
        "everything at once",
        (
            "DELETE FROM chat_views WHERE chat_id = :empty",
            "UPDATE chat_views SET message_count = message_count + 1, title = 'x'",
        ),
    ),
]


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=[c.name for c in CORRUPTIONS])
def test_rebuild_repairs_a_corrupted_read_model(
    container: Container, corruption: Corruption
) -> None:
    create = container.create_chat()
    post = container.post_message()
    busy = create(CreateChat(title="busy", principal=LOCAL)).chat_id
    quiet = create(CreateChat(title="quiet", principal=LOCAL)).chat_id
    empty = create(CreateChat(title="empty", principal=LOCAL)).chat_id
    gone = create(CreateChat(title="gone", principal=LOCAL)).chat_id
    for n in range(7):
        post(PostMessage(chat_id=busy, text=f"busy {n}", principal=LOCAL))
    post(PostMessage(chat_id=quiet, text="quiet", principal=LOCAL))
    post(PostMessage(chat_id=gone, text="gone", principal=LOCAL))
    container.delete_chat()(DeleteChat(chat_id=gone, principal=LOCAL))

    engine = container.write_engine()
    good = chat_views_snapshot(engine)
    assert len(good) == 3
    for statement in corruption.statements:
        execute(engine, statement, busy=busy, empty=empty, gone=gone)
    assert chat_views_snapshot(engine) != good  # the corruption did take

    assert rebuild_read_models(engine) == 3
    assert chat_views_snapshot(engine) == good
    get_chat = container.get_chat()
    assert get_chat(GetChat(chat_id=busy, principal=LOCAL)).message_count == 7
    assert (
        container.get_messages_after()(
            GetMessagesAfter(chat_id=busy, after=0, principal=LOCAL)
        ).last_seq
        == 7
    )
    assert get_chat(GetChat(chat_id=quiet, principal=LOCAL)).message_count == 1
    assert get_chat(GetChat(chat_id=empty, principal=LOCAL)).last_message_at is None
    with pytest.raises(ChatNotFound):
        get_chat(GetChat(chat_id=gone, principal=LOCAL))


def test_get_reads_the_read_model_not_the_write_model(
    container: Container, client: httpx.Client
) -> None:
    chat_id = client.post("/chats/", json={"title": "watched"}).json()["id"]
    posted = [
        client.post(f"/chats/{chat_id}/messages/", json={"text": f"m{n}"}).json() for n in range(4)
    ]
    before = client.get(f"/chats/{chat_id}").json()
    assert before["message_count"] == 4
    assert before["last_message_at"] == posted[-1]["created_at"]

    engine = container.write_engine()
    execute(
        engine,
        "UPDATE chat_views SET message_count = 999, title = 'projected' WHERE chat_id = :id",
        id=chat_id,
    )
    corrupted = client.get(f"/chats/{chat_id}").json()
    assert corrupted["message_count"] == 999
    assert corrupted["title"] == "projected"
    assert [m["text"] for m in corrupted["messages"]] == ["m0", "m1", "m2", "m3"]

    # Without its view row the chat cannot be read, though the write model still holds it.
    execute(engine, "DELETE FROM chat_views WHERE chat_id = :id", id=chat_id)
    assert count_rows(engine, "chats", id=chat_id) == 1
    assert client.get(f"/chats/{chat_id}").status_code == 404

    rebuild_read_models(engine)
    assert client.get(f"/chats/{chat_id}").json() == before


RACE_POSTERS = 8
RACE_POSTS_EACH = 20
MAX_REBUILDS = 2000
REBUILD_SECONDS = 60.0


def test_rebuild_while_commands_run_loses_nothing(
    container: Container, client: httpx.Client, server_url: str
) -> None:
    chats = [client.post("/chats/", json={"title": f"race {n}"}).json()["id"] for n in range(3)]
    statuses: list[int] = []
    created: list[int] = []
    deleted: list[int] = []
    lock = threading.Lock()
    posters_done = threading.Event()
    remaining = [RACE_POSTERS + 1]
    rebuilds = [0]

    def finished() -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                posters_done.set()

    def poster(p: int) -> Callable[[], None]:
        def run() -> None:
            try:
                with httpx.Client(base_url=server_url, timeout=60) as http:
                    for n in range(RACE_POSTS_EACH):
                        chat_id = chats[(p + n) % len(chats)]
                        response = http.post(
                            f"/chats/{chat_id}/messages/", json={"text": f"p{p}-{n}"}
                        )
                        with lock:
                            statuses.append(response.status_code)
            finally:
                finished()

        return run

    def churner() -> None:
        # Creates and deletes chats while the rebuilds run: rows appear and vanish.
        try:
            with httpx.Client(base_url=server_url, timeout=60) as http:
                for n in range(10):
                    response = http.post("/chats/", json={"title": f"churn {n}"})
                    assert response.status_code == 201
                    chat_id = response.json()["id"]
                    created.append(chat_id)
                    assert (
                        http.post(f"/chats/{chat_id}/messages/", json={"text": "x"}).status_code
                        == 201
                    )
                    if n % 2 == 0:
                        assert http.delete(f"/chats/{chat_id}").status_code == 204
                        deleted.append(chat_id)
        finally:
            finished()

    def rebuilder() -> None:
        # Rebuild over and over for as long as the commands run (bounded in count and time).
        engine = container.write_engine()
        deadline = time.monotonic() + REBUILD_SECONDS
        while not posters_done.is_set() and time.monotonic() < deadline:
            if rebuilds[0] == MAX_REBUILDS:
                break
            rebuild_read_models(engine)
            rebuilds[0] += 1

    run_in_threads([poster(p) for p in range(RACE_POSTERS)] + [churner, rebuilder])

    assert rebuilds[0] >= 1
    assert statuses == [201] * (RACE_POSTERS * RACE_POSTS_EACH)
    engine = container.write_engine()
    projected = chat_views_snapshot(engine)
    survivors = sorted(set(created) - set(deleted))
    assert [row[0] for row in projected] == sorted(chats + survivors)
    counts = {row[0]: row[3] for row in projected}  # chat_id, title, created_at, message_count
    expected = Counter(
        chats[(p + n) % len(chats)] for p in range(RACE_POSTERS) for n in range(RACE_POSTS_EACH)
    )
    for chat_id in chats:
        assert counts[chat_id] == expected[chat_id]
    for chat_id in survivors:
        assert counts[chat_id] == 1
    for chat_id in chats + survivors:
        assert counts[chat_id] == count_rows(engine, "messages", chat_id=chat_id)
        # No seq lost or taken twice while the rebuilds ran.
        assert count_rows(engine, "chat_views", chat_id=chat_id, last_seq=counts[chat_id]) == 1

    assert rebuild_and_compare(container) == projected
