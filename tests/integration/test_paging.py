"""Keyset paging through the handlers: ListChats and GetHistory as scripts use them, under
concurrent writes, across rebuilds of the read model, and on the indexes that keep a page's
cost constant."""

import base64
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from sqlalchemy import Engine, event, insert, text

from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage
from domain.errors import ChatNotFound, InvalidInput
from domain.principals import LOCAL
from infrastructure import tables
from infrastructure.consistency import HAS_REPLAYED, POSITION_AFTER_COMMIT
from infrastructure.container import Container
from infrastructure.driver_reads import bound
from infrastructure.plans import Read
from infrastructure.rebuild import rebuild_read_models
from infrastructure.replicas import REPLAY_LAG
from queries.cursors import HistoryPosition, encode_history
from queries.dtos import MessageDTO
from queries.get_chat import GetChat
from queries.get_history import GetHistory, HistoryDTO
from queries.list_chats import ChatListDTO, ChatSummaryDTO, ListChats
from tests.integration.helpers import chat_views_snapshot, execute, stored_messages
from tests.support.clocks import StepClock
from tests.support.threads import THREAD_TIMEOUT_SECONDS, run_in_threads

MAX_PAGES = 1000
PREVIEW_LENGTH = 100  # characters of the newest message shown in the list

Json = dict[str, Any]


def b64json(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode("ascii")


def walk_list(container: Container, limit: int) -> list[ChatListDTO]:
    """Every page of the chat list through the handler, first to last."""
    handler = container.list_chats()
    pages = [handler(ListChats(limit=limit, principal=LOCAL))]
    while pages[-1].next_cursor is not None:
        assert len(pages) < MAX_PAGES, "the list never ends"
        pages.append(handler(ListChats(limit=limit, cursor=pages[-1].next_cursor, principal=LOCAL)))
    return pages


def walk_history(container: Container, chat_id: int, limit: int) -> list[HistoryDTO]:
    """Every page of a chat's history through the handler, newest page first."""
    handler = container.get_history()
    pages = [handler(GetHistory(chat_id=chat_id, limit=limit, principal=LOCAL))]
    while pages[-1].next_before is not None:
        assert len(pages) < MAX_PAGES, "the history never ends"
        before = pages[-1].next_before
        pages.append(
            handler(GetHistory(chat_id=chat_id, before=before, limit=limit, principal=LOCAL))
        )
    return pages


def chat_order(pages: list[HistoryDTO]) -> list[MessageDTO]:
    return [message for page in reversed(pages) for message in page.messages]


def summaries(pages: list[ChatListDTO]) -> list[ChatSummaryDTO]:
    return [chat for page in pages for chat in page.chats]


# --- the handlers, as scripts use them -------------------------------------------------------


def test_list_chats_returns_frozen_pages(container: Container) -> None:
    create = container.create_chat()
    post = container.post_message()
    chats = [create(CreateChat(title=f"chat {n}", principal=LOCAL)).chat_id for n in range(21)]
    posted = post(PostMessage(chat_id=chats[3], text="x" * 150, principal=LOCAL))

    first = container.list_chats()(ListChats(principal=LOCAL))  # the default limit: 20

    assert isinstance(first, ChatListDTO)
    assert len(first.chats) == 20
    assert isinstance(first.next_cursor, str)
    top = first.chats[0]
    assert isinstance(top, ChatSummaryDTO)
    assert top.id == chats[3]
    assert top.message_count == 1
    assert top.last_message_at == posted.created_at
    assert top.last_activity_at == posted.created_at
    assert top.last_message_preview == "x" * PREVIEW_LENGTH
    assert top.title == "chat 3"
    with pytest.raises(AttributeError):
        top.title = "changed"  # type: ignore[misc]

    rest = container.list_chats()(ListChats(cursor=first.next_cursor, principal=LOCAL))
    assert len(rest.chats) == 1
    assert rest.next_cursor is None
    seen = [chat.id for chat in first.chats + rest.chats]
    assert sorted(seen) == sorted(chats)
    for chat in first.chats + rest.chats:
        assert chat.created_at.tzinfo is not None
        assert chat.last_activity_at.utcoffset() == timedelta(0)


def test_get_history_returns_frozen_pages(container: Container) -> None:
    chat_id = container.create_chat()(CreateChat(title="history", principal=LOCAL)).chat_id
    post = container.post_message()
    posted = [post(PostMessage(chat_id=chat_id, text=f"m{n}", principal=LOCAL)) for n in range(25)]

    newest = container.get_history()(
        GetHistory(chat_id=chat_id, principal=LOCAL)
    )  # the default limit: 20

    assert isinstance(newest, HistoryDTO)
    assert newest.chat_id == chat_id
    assert [m.id for m in newest.messages] == [p.message_id for p in posted[5:]]
    assert all(isinstance(m, MessageDTO) for m in newest.messages)
    assert [m.created_at for m in newest.messages] == [p.created_at for p in posted[5:]]
    assert newest.next_before is not None
    older = container.get_history()(
        GetHistory(chat_id=chat_id, before=newest.next_before, principal=LOCAL)
    )
    assert [m.text for m in older.messages] == [f"m{n}" for n in range(5)]
    assert older.next_before is None
    with pytest.raises(AttributeError):
        older.chat_id = 5  # type: ignore[misc]


def id_cursor(chat_id: int, message_id: int) -> str:
    """A history cursor as the service made them before they named a seq: by message id."""
    return b64json({"k": "messages", "chat": chat_id, "id": message_id})


def test_a_cursor_by_message_id_still_pages_as_one_by_seq(container: Container) -> None:
    create = container.create_chat()
    post = container.post_message()
    one = create(CreateChat(title="one", principal=LOCAL)).chat_id
    two = create(CreateChat(title="two", principal=LOCAL)).chat_id
    for n in range(8):  # interleaved: a message's id is not its seq
        post(PostMessage(chat_id=one, text=f"one {n}", principal=LOCAL))
        post(PostMessage(chat_id=two, text=f"two {n}", principal=LOCAL))
    stored = stored_messages(container.write_engine(), one)
    assert [m.seq for m in stored] == list(range(1, 9))
    assert [m.id for m in stored] != [m.seq for m in stored]
    history = container.get_history()

    for message in stored:
        by_seq = encode_history(HistoryPosition(one, message.seq))
        page = history(GetHistory(chat_id=one, before=by_seq, limit=3, principal=LOCAL))
        assert page == history(
            GetHistory(chat_id=one, before=id_cursor(one, message.id), limit=3, principal=LOCAL)
        )
        older = [m for m in stored if m.seq < message.seq]
        assert [m.id for m in page.messages] == [m.id for m in older[-3:]]
        # Its next page continues with a cursor of today's kind.
        assert (page.next_before is None) == (len(older) <= 3)
        if page.next_before is not None:
            assert page.next_before == encode_history(HistoryPosition(one, older[-3].seq))

    container.delete_chat()(DeleteChat(chat_id=one, principal=LOCAL))
    with pytest.raises(ChatNotFound):  # the chat is gone, as with a cursor by seq
        history(GetHistory(chat_id=one, before=id_cursor(one, stored[4].id), principal=LOCAL))


@pytest.mark.parametrize("limit", [0, 101, -1, True])
def test_the_handlers_refuse_an_invalid_limit(container: Container, limit: int) -> None:
    chat_id = container.create_chat()(CreateChat(title="x", principal=LOCAL)).chat_id

    with pytest.raises(InvalidInput) as listed:
        container.list_chats()(ListChats(limit=limit, principal=LOCAL))
    with pytest.raises(InvalidInput) as paged:
        container.get_history()(GetHistory(chat_id=chat_id, limit=limit, principal=LOCAL))

    assert listed.value.field == paged.value.field == "limit"


def test_the_handlers_refuse_foreign_cursors(container: Container) -> None:
    create = container.create_chat()
    post = container.post_message()
    one = create(CreateChat(title="one", principal=LOCAL)).chat_id
    two = create(CreateChat(title="two", principal=LOCAL)).chat_id
    for n in range(3):
        post(PostMessage(chat_id=one, text=f"one {n}", principal=LOCAL))
        post(PostMessage(chat_id=two, text=f"two {n}", principal=LOCAL))
    list_cursor = container.list_chats()(ListChats(limit=1, principal=LOCAL)).next_cursor
    history_cursor = container.get_history()(
        GetHistory(chat_id=one, limit=1, principal=LOCAL)
    ).next_before
    assert list_cursor is not None
    assert history_cursor is not None

    of_two = container.get_history()(GetHistory(chat_id=two, limit=3, principal=LOCAL)).messages[0]
    for wrong in (
        list_cursor,
        "garbage",
        b64json({"k": "history", "chat": one}),
        b64json({"k": "messages", "chat": one}),
        b64json({"k": "history", "chat": one, "id": 1}),  # a seq cursor names a seq
        b64json({"k": "messages", "chat": one, "seq": 1}),  # an id cursor names an id
        # An id cursor naming a message of another chat: no place in this one.
        b64json({"k": "messages", "chat": one, "id": of_two.id}),
    ):
        with pytest.raises(InvalidInput) as refused:
            container.get_history()(GetHistory(chat_id=one, before=wrong, principal=LOCAL))
        assert refused.value.field == "before"
    with pytest.raises(InvalidInput) as refused:
        container.get_history()(GetHistory(chat_id=two, before=history_cursor, principal=LOCAL))
    assert refused.value.field == "before"
    for wrong in (history_cursor, "garbage", b64json({"k": "chats", "id": one})):
        with pytest.raises(InvalidInput) as refused:
            container.list_chats()(ListChats(cursor=wrong, principal=LOCAL))
        assert refused.value.field == "cursor"


@pytest.mark.parametrize(("kind", "place"), [("history", "seq"), ("messages", "id")])
@pytest.mark.parametrize(
    ("chat_id", "chat_in_cursor"),
    [
        pytest.param(1, True, id="true-for-chat-1"),
        pytest.param(1, 1.0, id="float-for-chat-1"),
        pytest.param(12345, 12345.0, id="float-for-chat-12345"),
    ],
)
def test_a_history_cursor_must_name_its_chat_with_an_integer(
    container: Container, chat_id: int, chat_in_cursor: object, kind: str, place: str
) -> None:
    cursor = b64json({"k": kind, "chat": chat_in_cursor, place: 5})

    with pytest.raises(InvalidInput):
        container.get_history()(GetHistory(chat_id=chat_id, before=cursor, principal=LOCAL))


def test_history_of_a_missing_or_deleted_chat_is_not_found(container: Container) -> None:
    chat_id = container.create_chat()(CreateChat(title="doomed", principal=LOCAL)).chat_id
    post = container.post_message()
    for n in range(5):
        post(PostMessage(chat_id=chat_id, text=f"m{n}", principal=LOCAL))
    cursor = container.get_history()(
        GetHistory(chat_id=chat_id, limit=2, principal=LOCAL)
    ).next_before
    assert cursor is not None

    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))

    history = container.get_history()
    with pytest.raises(ChatNotFound):
        history(GetHistory(chat_id=chat_id, before=cursor, principal=LOCAL))
    with pytest.raises(ChatNotFound):
        history(GetHistory(chat_id=chat_id, principal=LOCAL))
    for impossible in (0, -1, 2**63, 10**30):
        with pytest.raises(ChatNotFound):
            history(GetHistory(chat_id=impossible, principal=LOCAL))


# --- paging while others write ---------------------------------------------------------------

CHATS = 48
HOT_CHATS = 12
PAGE_SIZE = 4
POSTERS = 4
POSTS_PER_PAGE = 3


class Gate:
    """Lets writers take one step per token the pager hands out, and the pager wait until
    every step handed out so far has been taken. Bounded: waits give up after the thread
    timeout, and writers stop once the pager is done and the tokens are spent."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._tokens = 0
        self._released = 0
        self._finished = 0
        self.done = False

    def release(self, count: int) -> None:
        with self._condition:
            self._tokens += count
            self._released += count
            self._condition.notify_all()

    def take(self) -> bool:
        """One token (True), or False once the pager is done and none are left."""
        with self._condition:
            ok = self._condition.wait_for(
                lambda: self._tokens > 0 or self.done, timeout=THREAD_TIMEOUT_SECONDS
            )
            assert ok, "the pager never handed out a token"
            if self._tokens == 0:
                return False
            self._tokens -= 1
            return True

    def step_taken(self) -> None:
        with self._condition:
            self._finished += 1
            self._condition.notify_all()

    def wait_for_steps(self) -> None:
        with self._condition:
            ok = self._condition.wait_for(
                lambda: self._finished == self._released, timeout=THREAD_TIMEOUT_SECONDS
            )
            assert ok, "the writers did not take their steps"

    def finish(self) -> None:
        with self._condition:
            self.done = True
            self._condition.notify_all()


def test_paging_the_list_while_messages_arrive(container: Container, server_url: str) -> None:
    rng = random.Random(99)
    create = container.create_chat()
    post = container.post_message()
    chats = [create(CreateChat(title=f"chat {n}", principal=LOCAL)).chat_id for n in range(CHATS)]
    for chat_id in rng.sample(chats, CHATS // 2):
        post(PostMessage(chat_id=chat_id, text=f"before the walk, to {chat_id}", principal=LOCAL))
    hot = rng.sample(chats, HOT_CHATS)
    gate = Gate()
    lock = threading.Lock()
    moved: set[int] = set()
    churned: list[int] = []
    statuses: list[int] = []
    pages: list[Json] = []

    def poster(seed: int) -> Callable[[], None]:
        def run() -> None:
            choose = random.Random(seed)
            with httpx.Client(base_url=server_url, timeout=60) as http:
                while gate.take():
                    chat_id = choose.choice(hot)
                    with lock:
                        moved.add(chat_id)  # from now on it may move at any moment
                    response = http.post(f"/chats/{chat_id}/messages/", json={"text": "new"})
                    with lock:
                        statuses.append(response.status_code)
                    gate.step_taken()

        return run

    def pager() -> None:
        try:
            with httpx.Client(base_url=server_url, timeout=60) as http:
                params: dict[str, Any] = {"limit": PAGE_SIZE}
                for number in range(MAX_PAGES):
                    if number % 2 == 0:
                        # Every other page starts once the posts handed out so far have landed
                        # (so chats certainly move mid-walk); the others race with the posts.
                        gate.wait_for_steps()
                    response = http.get("/chats/", params=params)
                    assert response.status_code == 200, response.text
                    page = response.json()
                    pages.append(page)
                    gate.release(POSTS_PER_PAGE)
                    if "next_cursor" not in page:
                        return
                    params["cursor"] = page["next_cursor"]
                raise AssertionError("the list never ends")
        finally:
            gate.finish()

    def churner() -> None:
        # Chats that appear, get a message and vanish while the walk goes on.
        with httpx.Client(base_url=server_url, timeout=60) as http:
            for n in range(6):
                response = http.post("/chats/", json={"title": f"churn {n}"})
                assert response.status_code == 201, response.text
                chat_id = response.json()["id"]
                with lock:
                    churned.append(chat_id)
                assert (
                    http.post(f"/chats/{chat_id}/messages/", json={"text": "x"}).status_code == 201
                )
                if n % 2 == 0:
                    assert http.delete(f"/chats/{chat_id}").status_code == 204

    run_in_threads([poster(p) for p in range(POSTERS)] + [pager, churner])

    assert len(pages) >= 2
    assert statuses == [201] * POSTS_PER_PAGE * len(pages)  # every post handed out was made
    assert moved
    walked = [chat for page in pages for chat in page["chats"]]
    appearances = Counter(chat["id"] for chat in walked)
    for chat_id in chats:
        if chat_id in moved:
            assert appearances[chat_id] <= 2, chat_id
        else:
            assert appearances[chat_id] == 1, (
                f"chat {chat_id} did not move, yet was seen {appearances[chat_id]} times"
            )
    assert set(appearances) <= set(chats) | set(churned)
    for chat_id in churned:
        assert appearances[chat_id] <= 2
    # Whatever moved meanwhile, the walk's positions only ever go back in time.
    positions = [(datetime.fromisoformat(chat["last_activity_at"]), chat["id"]) for chat in walked]
    assert positions == sorted(positions, reverse=True)
    assert len(set(positions)) == len(positions)
    # Afterwards a fresh walk shows every surviving chat once, with every message counted.
    final = summaries(walk_list(container, limit=7))
    survivors = set(chats) | set(churned[1::2])
    assert sorted(chat.id for chat in final) == sorted(survivors)
    engine = container.write_engine()
    for chat in final:
        assert chat.message_count == len(stored_messages(engine, chat.id))


def test_paging_back_through_a_chat_while_messages_arrive(
    container: Container, server_url: str
) -> None:
    chat_id = container.create_chat()(CreateChat(title="busy", principal=LOCAL)).chat_id
    post = container.post_message()
    for n in range(120):
        post(PostMessage(chat_id=chat_id, text=f"old {n}", principal=LOCAL))
    gate = Gate()
    statuses: list[int] = []
    pages: list[Json] = []

    def poster() -> None:
        with httpx.Client(base_url=server_url, timeout=60) as http:
            n = 0
            while gate.take():
                response = http.post(f"/chats/{chat_id}/messages/", json={"text": f"new {n}"})
                statuses.append(response.status_code)
                n += 1
                gate.step_taken()

    def pager() -> None:
        try:
            with httpx.Client(base_url=server_url, timeout=60) as http:
                params: dict[str, Any] = {"limit": 10}
                for number in range(MAX_PAGES):
                    if number % 2 == 0:
                        gate.wait_for_steps()
                    response = http.get(f"/chats/{chat_id}/messages/", params=params)
                    assert response.status_code == 200, response.text
                    pages.append(response.json())
                    gate.release(2)
                    if "next_before" not in pages[-1]:
                        return
                    params["before"] = pages[-1]["next_before"]
                raise AssertionError("the history never ends")
        finally:
            gate.finish()

    run_in_threads([poster, poster, pager])

    assert statuses
    assert statuses == [201] * len(statuses)
    newest_seen = pages[0]["messages"][-1]["id"]
    walked = [message for page in reversed(pages) for message in page["messages"]]
    stored = stored_messages(container.write_engine(), chat_id)
    # The walk is exactly the chat as it stood at the first page: nothing lost or repeated,
    # nothing newer slipped into an older page.
    assert [m["id"] for m in walked] == [m.id for m in stored if m.id <= newest_seen]
    # Posts only start once the first page is read: the walk is the 120 older messages.
    assert [m["text"] for m in walked] == [f"old {n}" for n in range(120)]
    assert [len(page["messages"]) for page in pages] == [10] * 12
    assert statuses == [201] * 2 * len(pages)
    assert len(stored) == 120 + len(statuses)


# --- the rebuilt read model ------------------------------------------------------------------

TEXTS = [
    "hi",
    "  as sent \n",
    "a" * 100,
    "b" * 101,
    "😀" * 150,
    "x" * 99 + "😀" + "y" * 10,
    "週末" * 70,
    "e\u0301" * 80,
]


def run_commands(container: Container, seed: int, steps: int) -> None:
    """A seeded mix of creates, posts (long, short, emoji) and deletes through the handlers."""
    rng = random.Random(seed)
    create = container.create_chat()
    post = container.post_message()
    delete = container.delete_chat()
    live: list[int] = []
    for step in range(steps):
        roll = rng.random()
        if not live or roll < 0.2:
            live.append(create(CreateChat(title=f"chat {seed}-{step}", principal=LOCAL)).chat_id)
        elif roll < 0.9:
            text_ = rng.choice(TEXTS) + f" {step}" * rng.randint(0, 3)
            post(PostMessage(chat_id=rng.choice(live), text=text_, principal=LOCAL))
        else:
            delete(DeleteChat(chat_id=live.pop(rng.randrange(len(live))), principal=LOCAL))


def read_everything(container: Container) -> tuple[list[ChatListDTO], dict[int, list[HistoryDTO]]]:
    """The whole list, page by page, and every chat's whole history, page by page."""
    pages = walk_list(container, limit=6)
    histories = {chat.id: walk_history(container, chat.id, limit=7) for chat in summaries(pages)}
    return pages, histories


@pytest.mark.parametrize("seed", [1, 42])
def test_the_rebuilt_read_model_serves_the_same_pages(container: Container, seed: int) -> None:
    run_commands(container, seed, steps=120)
    # A stretch with a clock that goes backwards, and chats left empty.
    clock = StepClock(datetime.now(UTC) + timedelta(days=10), step=timedelta(seconds=-1))
    with container.clock.override(providers.Object(clock)):
        run_commands(container, seed + 1, steps=40)
    create = container.create_chat()
    for n in range(3):
        create(CreateChat(title=f"empty {n}", principal=LOCAL))
    engine = container.write_engine()
    projected = chat_views_snapshot(engine)
    before = read_everything(container)
    listed = summaries(before[0])
    assert sum(chat.message_count == 0 for chat in listed) >= 3
    assert sum(chat.message_count > 0 for chat in listed) >= 3
    assert any(
        chat.last_message_preview and len(chat.last_message_preview) == PREVIEW_LENGTH
        for chat in listed
    )

    assert rebuild_read_models(engine) == len(projected)

    assert chat_views_snapshot(engine) == projected
    assert read_everything(container) == before


def test_a_rebuild_restores_the_list_of_a_corrupted_read_model(container: Container) -> None:
    run_commands(container, 5, steps=80)
    engine = container.write_engine()
    before = walk_list(container, limit=5)
    execute(
        engine,
        "UPDATE chat_views SET last_activity_at = created_at, last_message_preview = 'stale'",
    )
    assert walk_list(container, limit=5) != before

    rebuild_read_models(engine)

    assert walk_list(container, limit=5) == before


def test_the_list_and_the_chats_agree(container: Container) -> None:
    run_commands(container, 11, steps=100)
    get_chat = container.get_chat()

    for chat in summaries(walk_list(container, limit=9)):
        shown = get_chat(GetChat(chat_id=chat.id, limit=1, principal=LOCAL))
        assert (chat.title, chat.created_at, chat.message_count, chat.last_message_at) == (
            shown.title,
            shown.created_at,
            shown.message_count,
            shown.last_message_at,
        )
        assert chat.last_activity_at == (shown.last_message_at or shown.created_at)
        newest = shown.messages[-1].text[:PREVIEW_LENGTH] if shown.messages else None
        assert chat.last_message_preview == newest


# --- constant-cost pages: the indexes the queries read ---------------------------------------

BIG_CHATS = 3000
BUSY_CHATS = 8
MESSAGES_PER_BUSY_CHAT = 1500


def fill(engine: Engine) -> list[int]:
    """Many chats, a few of them long (each written in one burst, as an import or a busy
    afternoon would); returns the ids of the long ones. Fresh statistics tell the planner
    how the rows lie, so that its choice of plan reflects the query, not a guess."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(tables.chats),
            [
                {"title": f"chat {n}", "created_at": start + timedelta(seconds=n)}
                for n in range(BIG_CHATS)
            ],
        )
        busy = [
            int(row[0])
            for row in connection.execute(
                text("SELECT id FROM chats ORDER BY id LIMIT :n"), {"n": BUSY_CHATS}
            )
        ]
        connection.execute(
            insert(tables.messages),
            [
                {
                    "chat_id": chat_id,
                    "seq": n + 1,
                    "text": f"message {n}",
                    "created_at": start + timedelta(days=1, seconds=n),
                }
                for chat_id in busy
                for n in range(MESSAGES_PER_BUSY_CHAT)
            ],
        )
        # As the posts would have left it: a post to a long chat continues its seqs and
        # its times.
        connection.execute(
            text(
                "UPDATE chats SET "
                "last_seq = (SELECT COALESCE(MAX(seq), 0) FROM messages "
                "WHERE messages.chat_id = chats.id), "
                "last_message_at = (SELECT MAX(created_at) FROM messages "
                "WHERE messages.chat_id = chats.id)"
            )
        )
    rebuild_read_models(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE chats, messages, chat_views"))
    return busy


Statement = tuple[str, Any]


# What reading from a replica adds around a query (and CaughtUpReads's position): not
# the query itself.
REPLICA_CHECKS = {HAS_REPLAYED, POSITION_AFTER_COMMIT, str(REPLAY_LAG)}


def read_engines(container: Container) -> list[Engine]:
    """Where queries may run: the primary, and each replica (CHATAPI_TEST_READS_ON_STANDBY)."""
    return [container.read_engine()] + [r.engine for r in container.replicas().members]


def statements_of(engines: list[Engine], run: Callable[[], object]) -> list[Statement]:
    """The SQL (and its parameters) a handler sends through `engines` while `run` runs."""
    captured: list[Statement] = []

    def capture(
        connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement not in REPLICA_CHECKS:
            captured.append((statement, parameters))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", capture)
    return captured


def planned(read: Read[Any], engine: Engine) -> Statement:
    """The SQL (and its parameters) a handler's read sends, in a thread or on the loop."""
    return bound(read.statement, engine.dialect, read.params)


def postgres_plan(engine: Engine, statement: Statement) -> Json:
    with engine.connect() as connection:
        (row,) = connection.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + statement[0], statement[1]
        ).all()
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    plan: Json = document[0]["Plan"]
    return plan


def lineage(
    plan: Json, ancestors: tuple[Json, ...] = ()
) -> Iterator[tuple[Json, tuple[Json, ...]]]:
    """Every node of a plan with the nodes above it, nearest last."""
    yield plan, ancestors
    for child in plan.get("Plans", []):
        yield from lineage(child, (*ancestors, plan))


def assert_postgres_keyset_scan(
    plan: Json, relation: str, index: str, condition: str, backward: bool = True
) -> Json:
    """One scan of `index` (backward, unless told) whose rows go straight into the LIMIT: no
    sort of the whole relation, no sequential scan. Any other read of the relation looks
    one row up by its primary key (a cursor's row)."""
    scans = [
        (node, above) for node, above in lineage(plan) if node.get("Relation Name") == relation
    ]
    keyset = [(node, above) for node, above in scans if node.get("Index Name") == index]
    assert len(keyset) == 1, plan
    for other, _ in scans:
        if other is not keyset[0][0]:
            assert other["Node Type"] in ("Index Scan", "Index Only Scan"), plan
            assert other["Index Name"] == f"pk_{relation}", plan
    node, above = keyset[0]
    assert node["Node Type"] in ("Index Scan", "Index Only Scan"), plan
    assert node["Scan Direction"] == ("Backward" if backward else "Forward"), plan
    assert condition in node.get("Index Cond", ""), plan
    assert above, plan
    assert above[-1]["Node Type"] == "Limit", plan
    for other, _ in lineage(above[-1]):
        assert other["Node Type"] not in ("Sort", "Incremental Sort", "Seq Scan"), plan
    return node


def sqlite_plan(engine: Engine, statement: Statement) -> list[tuple[int, int, str]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement[0], statement[1])
        return [(int(row[0]), int(row[1]), str(row[3])) for row in rows]


SEQ_INDEX = "ix_messages_chat_id_seq"


def assert_sqlite_seq_search(rows: list[tuple[int, int, str]], condition: str) -> None:
    """The chat's messages are searched in the (chat_id, seq) index and read in its order: no
    sort of them. Any other read of messages looks one row up by id (a cursor's message)."""
    scans = [row for row in rows if " messages " in f"{row[2]} "]
    searches = [row for row in scans if f" USING INDEX {SEQ_INDEX} " in row[2]]
    assert len(searches) == 1, rows
    _, parent, detail = searches[0]
    assert detail == f"SEARCH messages USING INDEX {SEQ_INDEX} {condition}", rows
    assert not [row for row in rows if row[1] == parent and "TEMP B-TREE" in row[2]], rows
    for row in scans:
        if row is not searches[0]:
            assert row[2] == "SEARCH messages USING INTEGER PRIMARY KEY (rowid=?)", rows


def test_a_history_page_is_an_index_range_scan(container: Container) -> None:
    busy = fill(container.write_engine())
    chat_id = busy[BUSY_CHATS // 2]
    stored = stored_messages(container.write_engine(), chat_id)
    assert len(stored) == MESSAGES_PER_BUSY_CHAT
    middle = encode_history(HistoryPosition(chat_id, stored[750].seq))
    deep = encode_history(HistoryPosition(chat_id, stored[100].seq))  # far back in the chat
    # Cursors as the service made them before they named a seq: resolved by the message's id.
    middle_by_id = id_cursor(chat_id, stored[750].id)
    deep_by_id = id_cursor(chat_id, stored[100].id)
    history = container.get_history()
    engine = container.read_engine()

    def statement_of(before: str | None, limit: int = 20) -> Statement:
        query = GetHistory(chat_id=chat_id, before=before, limit=limit, principal=LOCAL)
        # One statement per page.
        return planned(history.plan(query), engine)

    page = history(GetHistory(chat_id=chat_id, before=deep, principal=LOCAL))
    assert [m.id for m in page.messages] == [m.id for m in stored[80:100]]
    assert history(GetHistory(chat_id=chat_id, before=deep_by_id, principal=LOCAL)) == page
    pages = (
        (statement_of(None, limit=100), "(chat_id=? AND seq<?)"),
        (statement_of(middle), "(chat_id=? AND seq<?)"),
        (statement_of(deep), "(chat_id=? AND seq<?)"),
        (statement_of(middle_by_id), "(chat_id=? AND seq<?)"),
        (statement_of(deep_by_id), "(chat_id=? AND seq<?)"),
    )
    for statement, sqlite_condition in pages:
        if engine.dialect.name == "postgresql":
            tree = postgres_plan(engine, statement)
            assert_postgres_keyset_scan(tree, "messages", SEQ_INDEX, "seq <=")
        else:
            assert_sqlite_seq_search(sqlite_plan(engine, statement), sqlite_condition)


def test_a_chat_s_last_messages_are_an_index_range_scan(container: Container) -> None:
    busy = fill(container.write_engine())
    handler = container.get_chat()
    engine = container.read_engine()

    for chat_id, limit in ((busy[0], 20), (busy[-1], 100)):
        query = GetChat(chat_id=chat_id, limit=limit, principal=LOCAL)
        (statement,) = statements_of(read_engines(container), partial(handler, query))
        assert [m.seq for m in handler(query).messages] == list(
            range(MESSAGES_PER_BUSY_CHAT - limit + 1, MESSAGES_PER_BUSY_CHAT + 1)
        )
        if engine.dialect.name == "postgresql":
            tree = postgres_plan(engine, statement)
            assert_postgres_keyset_scan(tree, "messages", SEQ_INDEX, "chat_id =")
        else:
            assert_sqlite_seq_search(sqlite_plan(engine, statement), "(chat_id=?)")


def test_a_post_reads_no_message_only_the_chat_s_row(container: Container) -> None:
    """The previous message's time comes with the lock on the chat's row, whatever the chat's
    size: a post looks nothing up in messages. On PostgreSQL, the lock and the insert are
    one statement; SQLite takes two (it has no UPDATE in WITH)."""
    busy = fill(container.write_engine())
    engine = container.write_engine()
    post = container.post_message()

    command = PostMessage(chat_id=busy[0], text="one more", principal=LOCAL)
    plan = post.plan(command)
    assert plan is not None
    sent = statements_of([engine], lambda: post(command))
    if engine.dialect.name == "postgresql":
        # The post's one statement goes through the driver's cursor (UnitOfWork.run, or the
        # loop's connections), not SQLAlchemy's execution: it is its plan's.
        sent.append(bound(plan.statement, engine.dialect, plan.params))

    reads = [statement for statement in sent if re.search(r"\bFROM messages\b", statement[0])]
    assert reads == [], sent
    writes = [
        statement
        for statement in sent
        if re.search(r"\b(UPDATE chats|INSERT INTO messages)\b", statement[0])
    ]
    stored = stored_messages(engine, busy[0])
    assert stored[-1].seq == MESSAGES_PER_BUSY_CHAT + 1
    # fill()'s messages are dated ahead of the real clock: the post kept up with the last.
    assert stored[-1].created_at == stored[-2].created_at
    if engine.dialect.name == "postgresql":
        (statement,) = writes
        assert statement[0].lstrip().startswith("WITH"), statement
        tree = postgres_plan(engine, statement)
        chat_scans = [node for node, _ in lineage(tree) if node.get("Relation Name") == "chats"]
        assert [(node["Node Type"], node.get("Index Name")) for node in chat_scans] == [
            ("ModifyTable", None),
            ("Index Scan", "pk_chats"),
        ], tree
        touched = {node.get("Relation Name") for node, _ in lineage(tree)} - {None}
        # The chat's row, the message, and the post's projection (folded in: chat_views and
        # the members' rows of chat_member_views, one statement with them).
        assert touched == {"chats", "messages", "chat_views", "chat_member_views"}, tree
        for node, _ in lineage(tree):
            if node.get("Relation Name") == "messages":
                assert (node["Node Type"], node["Operation"]) == ("ModifyTable", "Insert"), tree
    else:
        lock, insert_message = writes
        assert lock[0].startswith("UPDATE chats"), writes
        assert insert_message[0].startswith("INSERT INTO messages"), writes
        rows = sqlite_plan(engine, lock)
        assert [row[2] for row in rows] == ["SEARCH chats USING INTEGER PRIMARY KEY (rowid=?)"]


def test_a_list_page_is_an_index_range_scan(container: Container) -> None:
    fill(container.write_engine())
    handler = container.list_chats()
    engine = container.read_engine()
    first = handler(ListChats(limit=100, principal=LOCAL))
    assert first.next_cursor is not None
    far = walk_list(container, limit=100)[20]  # two thousand chats in
    assert far.next_cursor is not None

    for cursor, condition in (
        (None, ""),
        (first.next_cursor, "last_activity_at"),
        (far.next_cursor, "last_activity_at"),
    ):
        query = ListChats(limit=100, cursor=cursor, principal=LOCAL)
        statement = planned(handler.plan(query), engine)
        if engine.dialect.name == "postgresql":
            tree = postgres_plan(engine, statement)
            assert_postgres_keyset_scan(
                tree, "chat_views", "ix_chat_views_last_activity_at_chat_id", condition
            )
        else:
            rows = sqlite_plan(engine, statement)
            assert [row[2].split(" (")[0] for row in rows] == [
                ("SEARCH" if cursor else "SCAN")
                + " chat_views USING INDEX ix_chat_views_last_activity_at_chat_id"
            ], rows
