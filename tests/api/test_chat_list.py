"""The chat list over HTTP: GET /chats/?limit=N&cursor=..., most recent activity first."""

import random
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from commands.create_chat import CreateChat
from commands.post_message import PostMessage
from domain.principals import LOCAL
from infrastructure.container import Container
from tests.api.helpers import (
    Json,
    assert_utc_timestamp,
    assert_validation_error,
    create_chat,
    get_chat,
    post_message,
    resolve,
    string_schema,
)
from tests.support.clocks import StepClock
from tests.support.cursors import b64, b64json, decode_cursor

SUMMARY_FIELDS = {
    "id",
    "title",
    "created_at",
    "message_count",
    "last_message_at",
    "last_activity_at",
    "last_message_preview",
}
PREVIEW_LENGTH = 100
MAX_CURSOR_LENGTH = 200
# A walk through the list that has not ended after this many pages is a failure, not a hang.
MAX_PAGES = 500
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.fixture
def clock(container: Container) -> Iterator[StepClock]:
    """Every chat and message of the test gets a time one second after the previous one."""
    clock = StepClock()
    with container.clock.override(providers.Object(clock)):
        yield clock


@pytest.fixture
def frozen_clock(container: Container) -> Iterator[StepClock]:
    """Every chat and message of the test gets the very same time: order falls to the ids."""
    clock = StepClock(step=timedelta(0))
    with container.clock.override(providers.Object(clock)):
        yield clock


def assert_cursor(value: object) -> str:
    """An opaque cursor: a short string that goes into a query string as it is."""
    assert isinstance(value, str), value
    assert 1 <= len(value) <= MAX_CURSOR_LENGTH, value
    assert URL_SAFE.match(value), value
    return value


def list_chats(client: httpx.Client, path: str = "/chats/", **params: Any) -> Json:
    """One page of the list, checked for its shape."""
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: Json = response.json()
    assert set(body) in ({"chats"}, {"chats", "next_cursor"}), body
    if "next_cursor" in body:
        assert_cursor(body["next_cursor"])
    assert isinstance(body["chats"], list), body
    for chat in body["chats"]:
        assert set(chat) == SUMMARY_FIELDS, chat
    return body


def walk(client: httpx.Client, limit: int | None = None) -> list[Json]:
    """Every page of the list, first to last, following `next_cursor`."""
    params: dict[str, Any] = {} if limit is None else {"limit": limit}
    pages: list[Json] = []
    for _ in range(MAX_PAGES):
        page = list_chats(client, **params)
        pages.append(page)
        if "next_cursor" not in page:
            return pages
        params["cursor"] = page["next_cursor"]
    raise AssertionError(f"no last page after {MAX_PAGES} pages")


def ids(chats: list[Json]) -> list[int]:
    return [chat["id"] for chat in chats]


def walked_ids(pages: list[Json]) -> list[int]:
    return [chat["id"] for page in pages for chat in page["chats"]]


def create_chats(container: Container, count: int, prefix: str = "chat") -> list[int]:
    """`count` chats created one after the other through the handler; their ids in order."""
    create = container.create_chat()
    return [
        create(CreateChat(title=f"{prefix} {n}", principal=LOCAL)).chat_id for n in range(count)
    ]


def post(container: Container, chat_id: int, text: str = "hello") -> None:
    container.post_message()(PostMessage(chat_id=chat_id, text=text, principal=LOCAL))


# --- shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chats/", "/chats"])
def test_an_empty_list_is_one_page_without_a_cursor(client: httpx.Client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200, response.text
    assert response.json() == {"chats": []}  # no `next_cursor`, not even null


def test_a_chat_is_listed_with_its_summary(client: httpx.Client, clock: StepClock) -> None:
    chat = create_chat(client, "  Weekend plans ")
    post_message(client, chat["id"], "first")
    last = post_message(client, chat["id"], "See you at noon?")

    page = list_chats(client)

    assert page == {
        "chats": [
            {
                "id": chat["id"],
                "title": "Weekend plans",
                "created_at": chat["created_at"],
                "message_count": 2,
                "last_message_at": last["created_at"],
                "last_activity_at": last["created_at"],
                "last_message_preview": "See you at noon?",
            }
        ]
    }
    summary = page["chats"][0]
    assert_utc_timestamp(summary["last_activity_at"])
    assert_utc_timestamp(summary["last_message_at"])


def test_the_list_agrees_with_each_chat(client: httpx.Client, clock: StepClock) -> None:
    chats = [create_chat(client, f"chat {n}") for n in range(4)]
    for n, chat in enumerate(chats[:3]):
        for m in range(n + 1):
            post_message(client, chat["id"], f"chat {n} message {m}")

    listed = list_chats(client)["chats"]

    assert sorted(ids(listed)) == sorted(chat["id"] for chat in chats)
    for summary in listed:
        shown = get_chat(client, summary["id"], limit=100)
        for key in ("id", "title", "created_at", "message_count", "last_message_at"):
            assert summary[key] == shown[key], key
        newest = shown["messages"][-1]["text"] if shown["messages"] else None
        assert summary["last_message_preview"] == newest


# --- order -----------------------------------------------------------------------------------


def test_chats_are_ordered_by_last_activity_newest_first(
    client: httpx.Client, clock: StepClock
) -> None:
    a = create_chat(client, "a")["id"]
    b = create_chat(client, "b")["id"]
    c = create_chat(client, "c")["id"]
    post_message(client, a, "to a")
    d = create_chat(client, "d")["id"]  # empty, but created after a's message
    post_message(client, b, "to b")
    post_message(client, b, "to b again")

    listed = list_chats(client)["chats"]

    assert ids(listed) == [b, d, a, c]
    activity = [assert_utc_timestamp(chat["last_activity_at"]) for chat in listed]
    assert activity == sorted(activity, reverse=True)
    assert len(set(activity)) == len(activity)
    for chat in listed:
        expected = chat["last_message_at"] or chat["created_at"]
        assert chat["last_activity_at"] == expected


def test_empty_chats_have_no_preview_and_are_ordered_by_creation(
    client: httpx.Client, clock: StepClock
) -> None:
    created = [create_chat(client, f"empty {n}") for n in range(4)]

    listed = list_chats(client)["chats"]

    assert ids(listed) == [chat["id"] for chat in reversed(created)]
    for chat, made in zip(listed, reversed(created), strict=True):
        assert chat["message_count"] == 0
        assert chat["last_message_at"] is None
        assert chat["last_message_preview"] is None
        assert chat["created_at"] == made["created_at"]
        assert chat["last_activity_at"] == made["created_at"]


def test_a_new_message_moves_its_chat_to_the_front(client: httpx.Client, clock: StepClock) -> None:
    chats = [create_chat(client, f"chat {n}")["id"] for n in range(5)]
    assert ids(list_chats(client)["chats"]) == chats[::-1]

    post_message(client, chats[0], "back to the top")

    assert ids(list_chats(client)["chats"]) == [chats[0], *chats[:0:-1]]
    post_message(client, chats[2], "and another")
    assert ids(list_chats(client)["chats"]) == [chats[2], chats[0], chats[4], chats[3], chats[1]]


def test_a_deleted_chat_leaves_the_list(client: httpx.Client, clock: StepClock) -> None:
    chats = [create_chat(client, f"chat {n}")["id"] for n in range(3)]
    post_message(client, chats[1], "about to go")

    assert client.delete(f"/chats/{chats[1]}").status_code == 204

    assert ids(list_chats(client)["chats"]) == [chats[2], chats[0]]


def test_equal_activity_is_ordered_by_id_and_paged_without_loss(
    client: httpx.Client, container: Container, frozen_clock: StepClock
) -> None:
    chats = create_chats(container, 7)
    for chat_id in chats[::2]:
        post(container, chat_id)
    activity = {chat["last_activity_at"] for chat in list_chats(client, limit=100)["chats"]}
    assert len(activity) == 1  # every chat has the very same last activity

    for limit in (1, 2, 3, 6, 7, 8):
        pages = walk(client, limit)
        assert walked_ids(pages) == sorted(chats, reverse=True), limit


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "limit", "sizes"),
    [
        pytest.param(1, None, [1], id="one-chat"),
        pytest.param(20, None, [20], id="default-exactly-20"),
        pytest.param(21, None, [20, 1], id="default-21"),
        pytest.param(45, None, [20, 20, 5], id="default-45"),
        pytest.param(5, 5, [5], id="exactly-limit"),
        pytest.param(6, 5, [5, 1], id="limit-plus-1"),
        pytest.param(10, 5, [5, 5], id="twice-limit"),
        pytest.param(11, 5, [5, 5, 1], id="twice-limit-plus-1"),
        pytest.param(4, 1, [1, 1, 1, 1], id="limit-1"),
        pytest.param(3, 100, [3], id="limit-100-of-3"),
        pytest.param(100, 100, [100], id="limit-100-of-100"),
        pytest.param(101, 100, [100, 1], id="limit-100-of-101"),
    ],
)
def test_pages_split_the_list_at_limit(
    client: httpx.Client,
    container: Container,
    clock: StepClock,
    count: int,
    limit: int | None,
    sizes: list[int],
) -> None:
    chats = create_chats(container, count)

    pages = walk(client, limit)

    assert [len(page["chats"]) for page in pages] == sizes
    assert walked_ids(pages) == chats[::-1]  # every chat once, newest first
    for page in pages[:-1]:
        assert "next_cursor" in page
    assert "next_cursor" not in pages[-1]


def test_pages_continue_the_order_of_the_whole_list(
    client: httpx.Client, container: Container, clock: StepClock
) -> None:
    chats = create_chats(container, 30)
    rng = random.Random(2026)
    for _ in range(40):
        post(container, rng.choice(chats), f"message {rng.random()}")
    whole = list_chats(client, limit=100)
    assert "next_cursor" not in whole

    for limit in (1, 3, 7, 29, 30):
        pages = walk(client, limit)
        assert [chat for page in pages for chat in page["chats"]] == whole["chats"], limit


@pytest.mark.parametrize(
    "limit", ["0", "101", "-1", "abc", "1.5", "", "true", "1e2", "99999999999999999999"]
)
def test_an_invalid_limit_is_422(client: httpx.Client, limit: str) -> None:
    create_chat(client)
    assert_validation_error(client.get("/chats/", params={"limit": limit}), "query", "limit")


# --- cursors ---------------------------------------------------------------------------------

GOOD_AT = "2031-03-04T05:06:07.890123+00:00"


def chats_cursor(**changes: Any) -> str:
    """A chat-list cursor of today's shape, with fields changed (None removes one)."""
    payload: dict[str, Any] = {"k": "chats", "at": GOOD_AT, "id": 1}
    payload.update(changes)
    return b64json({key: value for key, value in payload.items() if value is not None})


BAD_CURSORS = [
    pytest.param("", id="empty"),
    pytest.param(" ", id="space"),
    pytest.param("not-a-cursor", id="words"),
    pytest.param("====", id="padding-only"),
    pytest.param("eyJ", id="truncated"),
    pytest.param("é", id="non-ascii"),
    pytest.param("eyJrIjoiY2hhdHMi😀", id="emoji-inside"),
    pytest.param("\x00", id="nul"),
    pytest.param("%", id="percent"),
    pytest.param("A" * (MAX_CURSOR_LENGTH + 1), id="over-long"),
    pytest.param(chats_cursor(pad="x" * 300), id="over-long-but-well-formed"),
    pytest.param(b64(random.Random(1).randbytes(24)), id="random-bytes-1"),
    pytest.param(b64(random.Random(2).randbytes(60)), id="random-bytes-2"),
    pytest.param(b64(b"hello, world"), id="base64-of-text"),
    pytest.param(b64(b"\xff\xfe\xfa\x00garbage"), id="base64-of-non-utf8"),
    pytest.param(b64json(None), id="json-null"),
    pytest.param(b64json([]), id="json-list"),
    pytest.param(b64json(["chats", GOOD_AT, 1]), id="json-list-of-fields"),
    pytest.param(b64json("chats"), id="json-string"),
    pytest.param(b64json(42), id="json-number"),
    pytest.param(b64json({}), id="json-empty-object"),
    pytest.param(chats_cursor(k=None), id="no-kind"),
    pytest.param(chats_cursor(k="Chats"), id="kind-wrong-case"),
    pytest.param(chats_cursor(k="history"), id="kind-of-history"),
    pytest.param(chats_cursor(k="messages"), id="kind-of-history-by-id"),
    pytest.param(b64json({"k": "history", "chat": 1, "seq": 1}), id="history-cursor"),
    pytest.param(b64json({"k": "messages", "chat": 1, "id": 1}), id="history-cursor-by-id"),
    pytest.param(chats_cursor(id=None), id="no-id"),
    pytest.param(chats_cursor(id=1.0), id="id-float"),
    pytest.param(chats_cursor(id=1.5), id="id-fraction"),
    pytest.param(chats_cursor(id=True), id="id-bool"),
    pytest.param(chats_cursor(id=0), id="id-zero"),
    pytest.param(chats_cursor(id=-1), id="id-negative"),
    pytest.param(chats_cursor(id=2**63), id="id-beyond-64-bits"),
    pytest.param(chats_cursor(id=10**30), id="id-huge"),
    pytest.param(chats_cursor(id="1"), id="id-string"),
    pytest.param(chats_cursor(id=[1]), id="id-list"),
    pytest.param(chats_cursor(at=None), id="no-time"),
    pytest.param(chats_cursor(at="2031-03-04T05:06:07.890123"), id="time-naive"),
    pytest.param(chats_cursor(at="2031-03-04"), id="time-date-only"),
    pytest.param(chats_cursor(at="yesterday"), id="time-words"),
    pytest.param(chats_cursor(at=""), id="time-empty"),
    pytest.param(chats_cursor(at=1_700_000_000), id="time-int"),
    pytest.param(chats_cursor(at=1.5), id="time-float"),
    pytest.param(chats_cursor(at=True), id="time-bool"),
    pytest.param(chats_cursor(at=["2031"]), id="time-list"),
    pytest.param(chats_cursor(at="2031-13-01T00:00:00+00:00"), id="time-month-13"),
    pytest.param(chats_cursor(at="2031-03-04T25:00:00+00:00"), id="time-hour-25"),
    # Cursors are compared in UTC (queries/cursors.py), where these instants have no date.
    pytest.param(chats_cursor(at="0001-01-01T00:00:00+14:00"), id="time-before-year-1-in-utc"),
    pytest.param(
        chats_cursor(at="9999-12-31T23:59:59.999999-14:00"), id="time-after-year-9999-in-utc"
    ),
    pytest.param(
        chats_cursor(at="\uff12\uff10\uff13\uff11-03-04T05:06:07+00:00"), id="time-non-ascii-digits"
    ),
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_malformed_or_foreign_cursor_is_422(
    client: httpx.Client, container: Container, clock: StepClock, cursor: str
) -> None:
    create_chats(container, 3)

    response = client.get("/chats/", params={"cursor": cursor, "limit": 1})

    assert_validation_error(response, "query", "cursor")


@pytest.mark.parametrize(
    ("at", "older"),
    [
        pytest.param("0001-01-01T00:00:00+00:00", 0, id="year-1"),
        pytest.param("9999-12-31T23:59:59.999999+00:00", 3, id="year-9999"),
    ],
)
def test_a_cursor_at_either_end_of_time_starts_a_page_there(
    client: httpx.Client, container: Container, clock: StepClock, at: str, older: int
) -> None:
    """A hand-made cursor merely starts a page elsewhere: before year 1 nothing is older;
    before the end of year 9999, every chat is."""
    chats = create_chats(container, 3)

    page = list_chats(client, cursor=chats_cursor(at=at))

    assert ids(page["chats"]) == chats[::-1][:older]


def test_the_smallest_and_largest_ids_are_positions_too(
    client: httpx.Client, container: Container, frozen_clock: StepClock
) -> None:
    """1 and 2**63 - 1 are ids a chat can have, so a cursor may name them: among chats of
    one time, the largest id comes before them all, the smallest after them all."""
    chats = create_chats(container, 3)
    (at,) = {chat["last_activity_at"] for chat in list_chats(client)["chats"]}

    after_largest = list_chats(client, cursor=chats_cursor(at=at, id=2**63 - 1))
    after_smallest = list_chats(client, cursor=chats_cursor(at=at, id=1))

    assert ids(after_largest["chats"]) == chats[::-1]
    assert after_smallest == {"chats": []}


def test_a_well_formed_cursor_of_the_longest_length_is_read(
    client: httpx.Client, container: Container, clock: StepClock
) -> None:
    """The declared `maxLength` is a length a cursor may have, not the first it may not."""
    chats = create_chats(container, 3)
    first = list_chats(client, limit=1)
    payload = decode_cursor(first["next_cursor"])
    padded = (b64json({**payload, "pad": "x" * n}) for n in range(MAX_CURSOR_LENGTH))
    longest = next(cursor for cursor in padded if len(cursor) == MAX_CURSOR_LENGTH)

    page = list_chats(client, limit=1, cursor=longest)

    assert page == list_chats(client, limit=1, cursor=first["next_cursor"])
    assert ids(page["chats"]) == [chats[1]]


def test_a_history_cursor_from_the_service_is_refused_as_cursor(
    client: httpx.Client, container: Container, clock: StepClock
) -> None:
    (chat_id,) = create_chats(container, 1)
    for n in range(3):
        post(container, chat_id, f"m{n}")
    before = get_chat(client, chat_id, limit=1)["next_before"]

    response = client.get("/chats/", params={"cursor": before})

    assert_validation_error(response, "query", "cursor")


def test_the_cursor_check_is_not_vacuous(
    client: httpx.Client, container: Container, clock: StepClock
) -> None:
    """A cursor re-encoded from what the service's own holds is accepted: the 422s above
    come from what was changed, not from how the tests encode."""
    create_chats(container, 5)
    first = list_chats(client, limit=2)
    payload = decode_cursor(first["next_cursor"])
    assert isinstance(payload, dict)
    assert set(payload) == {"k", "at", "id"}, payload

    again = list_chats(client, limit=2, cursor=b64json(payload))

    assert again == list_chats(client, limit=2, cursor=first["next_cursor"])
    assert len(again["chats"]) == 2


def test_cursors_survive_deletes(
    client: httpx.Client, container: Container, clock: StepClock
) -> None:
    chats = create_chats(container, 8)[::-1]  # newest first, as listed
    first = list_chats(client, limit=3)
    assert ids(first["chats"]) == chats[:3]

    # Delete the chat the cursor points at, and one of the next page.
    assert client.delete(f"/chats/{chats[2]}").status_code == 204
    assert client.delete(f"/chats/{chats[4]}").status_code == 204
    second = list_chats(client, limit=3, cursor=first["next_cursor"])
    assert ids(second["chats"]) == [chats[3], chats[5], chats[6]]

    # Delete every chat left behind the cursor: an empty last page, not an error.
    for chat_id in chats[7:]:
        assert client.delete(f"/chats/{chat_id}").status_code == 204
    assert list_chats(client, limit=3, cursor=second["next_cursor"]) == {"chats": []}
    # And the first cursor still works, on what is left.
    assert ids(list_chats(client, limit=3, cursor=first["next_cursor"])["chats"]) == [
        chats[3],
        chats[5],
        chats[6],
    ]


def test_chats_that_move_or_appear_while_paging_do_not_disturb_the_others(
    client: httpx.Client, container: Container, clock: StepClock
) -> None:
    chats = create_chats(container, 9)[::-1]  # newest first, as listed
    first = list_chats(client, limit=3)
    assert ids(first["chats"]) == chats[:3]

    post(container, chats[1], "seen already, moves to the front")
    post(container, chats[4], "not seen yet, moves to the front")
    newcomer = create_chats(container, 1, "newcomer")[0]
    rest = walk_from(client, first["next_cursor"], limit=3)

    # The chats that did not move, each exactly once, in order; the moved ones not again.
    assert ids(first["chats"]) + rest == chats[:4] + chats[5:]
    assert newcomer not in rest
    # A new walk sees the new order.
    assert walked_ids(walk(client, 4)) == [
        newcomer,
        chats[4],
        chats[1],
        *chats[:1],
        *chats[2:4],
        *chats[5:],
    ]


def walk_from(client: httpx.Client, cursor: str, limit: int) -> list[int]:
    seen: list[int] = []
    for _ in range(MAX_PAGES):
        page = list_chats(client, limit=limit, cursor=cursor)
        seen += ids(page["chats"])
        if "next_cursor" not in page:
            return seen
        cursor = page["next_cursor"]
    raise AssertionError(f"no last page after {MAX_PAGES} pages")


# --- preview ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "preview"),
    [
        pytest.param("hi", "hi", id="short"),
        pytest.param("  spaced\n\ttext  ", "  spaced\n\ttext  ", id="as-sent"),
        pytest.param("a" * 99, "a" * 99, id="99"),
        pytest.param("a" * 100, "a" * 100, id="100"),
        pytest.param("a" * 101, "a" * 100, id="101"),
        pytest.param("b" * 5000, "b" * 100, id="5000"),
        pytest.param("😀" * 100, "😀" * 100, id="100-emoji"),
        pytest.param("😀" * 150, "😀" * 100, id="150-emoji"),
        pytest.param("a" + "😀" * 120, "a" + "😀" * 99, id="emoji-after-ascii"),
        pytest.param("週末" * 80, "週末" * 50, id="cjk"),
        pytest.param("é" * 101, "é" * 100, id="latin-1"),
        pytest.param("e\u0301" * 60, "e\u0301" * 50, id="combining-marks"),
        pytest.param("x" * 99 + "😀" + "y", "x" * 99 + "😀", id="emoji-at-the-cut"),
    ],
)
def test_the_preview_is_the_first_100_characters_of_the_newest_message(
    client: httpx.Client, chat: Json, text: str, preview: str
) -> None:
    post_message(client, chat["id"], "an older message")
    post_message(client, chat["id"], text)

    (listed,) = list_chats(client)["chats"]

    assert listed["last_message_preview"] == preview
    assert len(listed["last_message_preview"]) == min(len(text), PREVIEW_LENGTH)
    assert text.startswith(listed["last_message_preview"])


def test_the_preview_follows_the_newest_message(client: httpx.Client, chat: Json) -> None:
    post_message(client, chat["id"], "😀" * 500)
    (listed,) = list_chats(client)["chats"]
    assert listed["last_message_preview"] == "😀" * PREVIEW_LENGTH

    post_message(client, chat["id"], "ok")

    (listed,) = list_chats(client)["chats"]
    assert listed["last_message_preview"] == "ok"
    assert listed["message_count"] == 2


# --- OpenAPI ---------------------------------------------------------------------------------


def test_the_list_operation_is_documented(spec: Json) -> None:
    operation = spec["paths"]["/chats/"]["get"]
    assert operation["summary"]
    assert "cursor" in operation["description"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert set(parameters) == {"limit", "cursor", "consistency-token"}

    limit = parameters["limit"]
    assert limit["in"] == "query"
    assert limit.get("required", False) is False
    assert limit["schema"]["type"] == "integer"
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    assert limit["schema"]["default"] == 20

    cursor = parameters["cursor"]
    assert cursor["in"] == "query"
    assert cursor.get("required", False) is False
    assert cursor.get("description") or cursor["schema"].get("description")
    declared = string_schema(cursor["schema"])
    assert declared.get("maxLength", MAX_CURSOR_LENGTH) <= MAX_CURSOR_LENGTH
    examples = cursor.get("examples") or cursor["schema"].get("examples")
    assert examples, cursor

    body = resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(body["required"]) == {"chats"}  # next_cursor may be absent
    string_schema(body["properties"]["next_cursor"])
    summary = resolve(spec, body["properties"]["chats"]["items"])
    assert set(summary["properties"]) == SUMMARY_FIELDS
    assert set(summary["required"]) == SUMMARY_FIELDS
    (example,) = body["examples"]
    assert set(example["chats"][0]) == SUMMARY_FIELDS
    assert_cursor(example["next_cursor"])
    assert {"422", "503"} <= set(operation["responses"])


def test_the_documented_example_cursor_is_accepted(
    client: httpx.Client, spec: Json, container: Container, clock: StepClock
) -> None:
    create_chats(container, 2)
    cursor = next(p for p in spec["paths"]["/chats/"]["get"]["parameters"] if p["name"] == "cursor")
    examples = cursor.get("examples") or cursor["schema"]["examples"]

    for example in examples:
        value = example["value"] if isinstance(example, dict) else example
        response = client.get("/chats/", params={"cursor": assert_cursor(value)})
        assert response.status_code == 200, response.text
