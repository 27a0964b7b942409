"""Paging back through a chat over HTTP: GET /chats/{chat_id}/messages/?before=...&limit=N,
and the `next_before` of GET /chats/{chat_id} that leads into it."""

import itertools
import random
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from commands.post_message import PostMessage
from domain.principals import LOCAL
from infrastructure.container import Container
from tests.api.helpers import (
    Json,
    assert_detail_error,
    assert_not_500,
    assert_validation_error,
    create_chat,
    get_chat,
    missing_chat_id,
    post_message,
    resolve,
    string_schema,
)
from tests.support.cursors import b64, b64json, decode_cursor

MESSAGE_FIELDS = {"id", "chat_id", "seq", "text", "created_at", "author"}
MAX_CURSOR_LENGTH = 200
# A walk back that has not reached the oldest message after this many pages is a failure.
MAX_PAGES = 500
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def assert_cursor(value: object) -> str:
    """An opaque cursor: a short string that goes into a query string as it is."""
    assert isinstance(value, str), value
    assert 1 <= len(value) <= MAX_CURSOR_LENGTH, value
    assert URL_SAFE.match(value), value
    return value


def history_path(chat_id: int) -> str:
    return f"/chats/{chat_id}/messages/"


def history(client: httpx.Client, chat_id: int, path: str | None = None, **params: Any) -> Json:
    """One page of a chat's history, checked for its shape."""
    response = client.get(path or history_path(chat_id), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: Json = response.json()
    assert set(body) in ({"chat_id", "messages"}, {"chat_id", "messages", "next_before"}), body
    assert body["chat_id"] == chat_id
    if "next_before" in body:
        assert_cursor(body["next_before"])
    ids = [message["id"] for message in body["messages"]]
    assert ids == sorted(ids), "a page is oldest first"
    assert len(set(ids)) == len(ids)
    for message in body["messages"]:
        assert set(message) == MESSAGE_FIELDS, message
        assert message["chat_id"] == chat_id
    return body


def walk_back(
    client: httpx.Client, chat_id: int, limit: int | None = None, before: str | None = None
) -> list[Json]:
    """Pages from the newest (or from `before`) back to the oldest, following `next_before`."""
    params: dict[str, Any] = {} if limit is None else {"limit": limit}
    if before is not None:
        params["before"] = before
    pages: list[Json] = []
    for _ in range(MAX_PAGES):
        page = history(client, chat_id, **params)
        pages.append(page)
        if "next_before" not in page:
            return pages
        params["before"] = page["next_before"]
    raise AssertionError(f"no oldest page after {MAX_PAGES} pages")


def in_chat_order(pages: list[Json]) -> list[Json]:
    """The messages of pages walked newest page first, put back in the chat's order."""
    return [message for page in reversed(pages) for message in page["messages"]]


def post_many(container: Container, chat_id: int, count: int, start: int = 1) -> list[Json]:
    """Post `message <start>` .. through the handler; each as the API would render it."""
    handler = container.post_message()
    posted = []
    for n in range(start, start + count):
        event = handler(PostMessage(chat_id=chat_id, text=f"message {n}", principal=LOCAL))
        posted.append(
            {
                "id": event.message_id,
                "chat_id": event.chat_id,
                "seq": event.seq,
                "text": event.text,
                "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
                "author": event.author,
            }
        )
    return posted


def texts(messages: list[Json]) -> list[str]:
    return [message["text"] for message in messages]


# --- pages -----------------------------------------------------------------------------------


def test_the_newest_page_without_a_cursor(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    posted = post_many(container, chat["id"], 25)

    page = history(client, chat["id"])

    assert page["messages"] == posted[5:]  # the newest 20, oldest first
    assert "next_before" in page


@pytest.mark.parametrize("path", ["/chats/{}/messages/", "/chats/{}/messages"])
def test_an_empty_chat_has_one_empty_page(client: httpx.Client, chat: Json, path: str) -> None:
    response = client.get(path.format(chat["id"]))

    assert response.status_code == 200, response.text
    assert response.json() == {"chat_id": chat["id"], "messages": []}  # no `next_before`


def test_a_long_chat_is_walked_back_in_pages_of_100(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    posted = post_many(container, chat["id"], 250)

    pages = walk_back(client, chat["id"], limit=100)

    assert [len(page["messages"]) for page in pages] == [100, 100, 50]
    assert pages[0]["messages"] == posted[150:]
    assert pages[1]["messages"] == posted[50:150]
    assert pages[2]["messages"] == posted[:50]
    assert in_chat_order(pages) == posted
    assert ["next_before" in page for page in pages] == [True, True, False]
    # Each page ends right before the one walked just before it.
    for newer, older in itertools.pairwise(pages):
        assert older["messages"][-1]["id"] < newer["messages"][0]["id"]


@pytest.mark.parametrize(
    ("count", "limit", "sizes"),
    [
        pytest.param(1, None, [1], id="one-message"),
        pytest.param(20, None, [20], id="default-exactly-20"),
        pytest.param(21, None, [20, 1], id="default-21"),
        pytest.param(40, None, [20, 20], id="default-40"),
        pytest.param(5, 5, [5], id="exactly-limit"),
        pytest.param(6, 5, [5, 1], id="limit-plus-1"),
        pytest.param(11, 5, [5, 5, 1], id="twice-limit-plus-1"),
        pytest.param(4, 1, [1, 1, 1, 1], id="limit-1"),
        pytest.param(3, 100, [3], id="limit-100-of-3"),
        pytest.param(100, 100, [100], id="limit-100-of-100"),
        pytest.param(101, 100, [100, 1], id="limit-100-of-101"),
    ],
)
def test_pages_split_the_history_at_limit(
    client: httpx.Client,
    container: Container,
    chat: Json,
    count: int,
    limit: int | None,
    sizes: list[int],
) -> None:
    posted = post_many(container, chat["id"], count)

    pages = walk_back(client, chat["id"], limit)

    assert [len(page["messages"]) for page in pages] == sizes
    assert in_chat_order(pages) == posted
    assert "next_before" not in pages[-1]


def test_history_pages_only_the_chat_it_names(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    other = create_chat(client, "other")
    mine: list[Json] = []
    for n in range(6):  # interleaved ids
        mine += post_many(container, chat["id"], 3, start=3 * n)
        post_many(container, other["id"], 2, start=100 + n)

    assert in_chat_order(walk_back(client, chat["id"], limit=4)) == mine


def test_a_cursor_by_message_id_from_before_the_upgrade_still_pages(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    """Cursors used to name a message by id; a client may still hold one. It starts the same
    page as today's cursor of that message, and the walk goes on with today's cursors."""
    other = create_chat(client, "other")
    posted: list[Json] = []
    for n in range(5):  # interleaved: a message's id is not its seq
        posted += post_many(container, chat["id"], 3, start=3 * n)
        post_many(container, other["id"], 2, start=100 + n)
    assert [m["id"] for m in posted] != [m["seq"] for m in posted]

    for index, message in enumerate(posted):
        by_id = history(client, chat["id"], limit=4, before=id_cursor(chat["id"], message["id"]))
        by_seq = history(
            client, chat["id"], limit=4, before=history_cursor(chat["id"], message["seq"])
        )
        assert by_id == by_seq
        assert by_id["messages"] == posted[max(0, index - 4) : index]
        if "next_before" in by_id:
            assert decode_cursor(by_id["next_before"])["k"] == "history"

    pages = walk_back(client, chat["id"], limit=4, before=id_cursor(chat["id"], posted[-1]["id"]))
    assert in_chat_order(pages) == posted[:-1]


# --- GET /chats/{chat_id} leads into the history ---------------------------------------------


def test_the_chat_s_next_before_continues_where_its_messages_end(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    posted = post_many(container, chat["id"], 45)

    shown = get_chat(client, chat["id"], limit=20)

    assert shown["messages"] == posted[25:]
    assert_cursor(shown["next_before"])
    pages = walk_back(client, chat["id"], limit=20, before=shown["next_before"])
    assert [page["messages"] for page in pages] == [posted[5:25], posted[:5]]
    assert in_chat_order(pages) + shown["messages"] == posted


@pytest.mark.parametrize(
    ("count", "limit", "more"),
    [
        pytest.param(0, 20, False, id="empty"),
        pytest.param(19, 20, False, id="fewer-than-limit"),
        pytest.param(20, 20, False, id="exactly-limit"),
        pytest.param(21, 20, True, id="limit-plus-1"),
        pytest.param(2, 1, True, id="limit-1"),
        pytest.param(100, 100, False, id="exactly-100"),
        pytest.param(101, 100, True, id="101-of-100"),
    ],
)
def test_the_chat_s_next_before_is_absent_when_nothing_is_older(
    client: httpx.Client, container: Container, chat: Json, count: int, limit: int, more: bool
) -> None:
    posted = post_many(container, chat["id"], count)

    shown = get_chat(client, chat["id"], limit=limit)

    assert ("next_before" in shown) is more  # absent, not null, when there is nothing more
    assert shown["messages"] == posted[max(0, count - limit) :]
    if more:
        older = history(client, chat["id"], before=shown["next_before"], limit=limit)
        assert older["messages"] == posted[max(0, count - 2 * limit) : count - limit]


def test_the_chat_and_its_newest_page_agree(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    post_many(container, chat["id"], 30)

    for limit in (1, 7, 20, 30, 100):
        shown = get_chat(client, chat["id"], limit=limit)
        page = history(client, chat["id"], limit=limit)
        assert page["messages"] == shown["messages"], limit
        assert ("next_before" in page) is ("next_before" in shown), limit
        if "next_before" in page:
            continued = history(client, chat["id"], limit=limit, before=shown["next_before"])
            assert continued == history(client, chat["id"], limit=limit, before=page["next_before"])


# --- while messages arrive, and after deletes ------------------------------------------------


def test_new_messages_do_not_disturb_older_pages(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    posted = post_many(container, chat["id"], 50)
    first = history(client, chat["id"], limit=20)
    assert first["messages"] == posted[30:]

    newer = post_many(container, chat["id"], 15, start=51)
    second = history(client, chat["id"], limit=20, before=first["next_before"])
    newer += post_many(container, chat["id"], 5, start=66)
    third = history(client, chat["id"], limit=20, before=second["next_before"])

    assert second["messages"] == posted[10:30]
    assert third["messages"] == posted[:10]
    assert "next_before" not in third
    # The newest page does show them.
    assert history(client, chat["id"], limit=20)["messages"] == newer


def test_a_cursor_of_a_deleted_chat_is_404(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    post_many(container, chat["id"], 10)
    first = history(client, chat["id"], limit=3)

    assert client.delete(f"/chats/{chat['id']}").status_code == 204

    response = client.get(history_path(chat["id"]), params={"before": first["next_before"]})
    assert_detail_error(response, 404)
    assert_detail_error(client.get(history_path(chat["id"])), 404)
    # A cursor by message id, as made before the upgrade: the chat is gone, not the cursor bad.
    oldest_shown = first["messages"][0]["id"]
    response = client.get(
        history_path(chat["id"]), params={"before": id_cursor(chat["id"], oldest_shown)}
    )
    assert_detail_error(response, 404)


def test_other_chats_page_on_when_one_is_deleted(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    other = create_chat(client, "other")
    kept = post_many(container, chat["id"], 9)
    post_many(container, other["id"], 9)
    first = history(client, chat["id"], limit=4)

    assert client.delete(f"/chats/{other['id']}").status_code == 204

    rest = walk_back(client, chat["id"], limit=4, before=first["next_before"])
    assert in_chat_order([first, *rest]) == kept


# --- errors ----------------------------------------------------------------------------------


def test_history_of_a_missing_chat_is_404(client: httpx.Client, chat: Json) -> None:
    assert_detail_error(client.get(history_path(missing_chat_id(chat))), 404)


@pytest.mark.parametrize("chat_id", ["0", "-1", "99999999999999999999", "9223372036854775808"])
def test_history_of_an_impossible_chat_id_is_404_or_422(client: httpx.Client, chat_id: str) -> None:
    response = client.get(f"/chats/{chat_id}/messages/")
    assert_not_500(response)
    assert response.status_code in (404, 422), response.text


@pytest.mark.parametrize("chat_id", ["abc", "1.5", "true"])
def test_history_of_a_non_integer_chat_id_is_422(client: httpx.Client, chat_id: str) -> None:
    assert_validation_error(client.get(f"/chats/{chat_id}/messages/"), "path", "chat_id")


@pytest.mark.parametrize(
    "limit", ["0", "101", "-1", "abc", "1.5", "", "true", "1e2", "99999999999999999999"]
)
def test_an_invalid_limit_is_422(client: httpx.Client, chat: Json, limit: str) -> None:
    post_message(client, chat["id"])
    response = client.get(history_path(chat["id"]), params={"limit": limit})
    assert_validation_error(response, "query", "limit")


def not_an_integer() -> tuple[str, str]:
    """The type and message pydantic itself gives a string that is no integer at all."""
    try:
        TypeAdapter(int).validate_python("abc")
    except ValidationError as error:
        (only,) = error.errors()
        return only["type"], only["msg"]
    raise AssertionError("pydantic read 'abc' as an integer")


NOT_AN_INTEGER = not_an_integer()
# Spellings of 1 that pydantic's lax parsing accepts and OpenAPI's integer does not.
LAX_ONES = ["\u00a01", " 1", "+1", "1.0", "1_0"]


@pytest.mark.parametrize("spelling", LAX_ONES)
def test_a_laxly_spelled_integer_is_refused_as_abc_is(
    client: httpx.Client, chat: Json, spelling: str
) -> None:
    """Wherever the history takes an integer: the same error as for "abc", `int_parsing`."""
    assert NOT_AN_INTEGER[0] == "int_parsing"
    spelled_id = quote(spelling.replace("1", str(chat["id"])))
    requests: list[tuple[str, dict[str, str], list[str]]] = [
        (f"/chats/{spelled_id}/messages/", {}, ["path", "chat_id"]),
        (history_path(chat["id"]), {"limit": spelling}, ["query", "limit"]),
        (history_path(chat["id"]), {"after": spelling}, ["query", "after"]),
    ]
    for path, params, loc in requests:
        (error,) = assert_validation_error(client.get(path, params=params))
        assert error["loc"] == loc, error
        assert (error["type"], error["msg"]) == NOT_AN_INTEGER, error


def history_cursor(chat: Any, seq: Any = 1, **extra: Any) -> str:
    """A history cursor of today's shape, with the values given (tests only)."""
    return b64json({"k": "history", "chat": chat, "seq": seq, **extra})


def id_cursor(chat: Any, message: Any = 1, **extra: Any) -> str:
    """A history cursor as the service made them before they named a seq: by message id."""
    return b64json({"k": "messages", "chat": chat, "id": message, **extra})


CursorFor = Callable[[int], str]
CursorMaker = Callable[..., str]


def bad_fields(kind: str, make: CursorMaker, place: str) -> list[Any]:
    """Cursors of one kind that are well formed but for one field's value."""
    bad_chats: list[tuple[str, Callable[[int], Any]]] = [
        ("another", lambda chat_id: chat_id + 1),
        ("null", lambda chat_id: None),
        ("string", str),
        ("float", float),
        ("list", lambda chat_id: [chat_id]),
        ("negative", lambda chat_id: -chat_id),
    ]
    bad_places: list[tuple[str, Any]] = [
        ("null", None),
        ("float", 1.0),
        ("fraction", 2.5),
        ("bool", True),
        ("zero", 0),
        ("negative", -5),
        ("beyond-64-bits", 2**63),
        ("huge", 10**30),
        ("string", "5"),
        ("object", {"id": 5}),
    ]
    return [
        pytest.param(
            lambda chat_id, chat_of=chat_of: make(chat_of(chat_id)), id=f"{kind}-chat-{name}"
        )
        for name, chat_of in bad_chats
    ] + [
        pytest.param(lambda chat_id, value=value: make(chat_id, value), id=f"{kind}-{place}-{name}")
        for name, value in bad_places
    ]


BAD_BEFORE: list[Any] = [
    pytest.param(lambda chat_id: "", id="empty"),
    pytest.param(lambda chat_id: "not-a-cursor", id="words"),
    pytest.param(lambda chat_id: "====", id="padding-only"),
    pytest.param(lambda chat_id: "eyJ", id="truncated"),
    pytest.param(lambda chat_id: "ü", id="non-ascii"),
    pytest.param(lambda chat_id: "eyJrIjoi😀", id="emoji-inside"),
    pytest.param(lambda chat_id: "\x00", id="nul"),
    pytest.param(lambda chat_id: "A" * (MAX_CURSOR_LENGTH + 1), id="over-long"),
    pytest.param(lambda chat_id: history_cursor(chat_id, pad="x" * 300), id="over-long-json"),
    pytest.param(lambda chat_id: id_cursor(chat_id, pad="x" * 300), id="over-long-json-by-id"),
    pytest.param(lambda chat_id: b64(random.Random(3).randbytes(33)), id="random-bytes"),
    pytest.param(lambda chat_id: b64(b"before the war"), id="base64-of-text"),
    pytest.param(lambda chat_id: b64(b"\xc3\x28\xa0\xa1"), id="base64-of-non-utf8"),
    pytest.param(lambda chat_id: b64json(None), id="json-null"),
    pytest.param(lambda chat_id: b64json([chat_id, 1]), id="json-list"),
    pytest.param(lambda chat_id: b64json(7), id="json-number"),
    pytest.param(lambda chat_id: b64json({}), id="json-empty-object"),
    pytest.param(lambda chat_id: b64json({"chat": chat_id, "seq": 1}), id="no-kind"),
    pytest.param(
        lambda chat_id: b64json({"k": "History", "chat": chat_id, "seq": 1}), id="kind-wrong-case"
    ),
    pytest.param(
        lambda chat_id: b64json({"k": "Messages", "chat": chat_id, "id": 1}),
        id="kind-wrong-case-by-id",
    ),
    pytest.param(
        lambda chat_id: b64json({"k": "chats", "chat": chat_id, "id": 1}), id="kind-of-list"
    ),
    pytest.param(
        lambda chat_id: b64json({"k": "chats", "at": "2031-03-04T05:06:07+00:00", "id": 1}),
        id="chat-list-cursor",
    ),
    # Each kind names its place with its own field.
    pytest.param(
        lambda chat_id: b64json({"k": "history", "chat": chat_id, "id": 1}), id="seq-kind-with-id"
    ),
    pytest.param(
        lambda chat_id: b64json({"k": "messages", "chat": chat_id, "seq": 1}), id="id-kind-with-seq"
    ),
    # Well formed, but no message of the chat has that id (the chat's ids are far smaller).
    pytest.param(lambda chat_id: id_cursor(chat_id, 2**62), id="id-of-no-message"),
    *bad_fields("seq-kind", history_cursor, "seq"),
    *bad_fields("id-kind", id_cursor, "id"),
]


@pytest.mark.parametrize("cursor_for", BAD_BEFORE)
def test_a_malformed_or_foreign_before_is_422(
    client: httpx.Client, container: Container, chat: Json, cursor_for: CursorFor
) -> None:
    post_many(container, chat["id"], 5)

    response = client.get(history_path(chat["id"]), params={"before": cursor_for(chat["id"])})

    assert_validation_error(response, "query", "before")


def test_a_bool_chat_in_before_is_422_for_chat_1(client: httpx.Client) -> None:
    """JSON `true` equals 1 in Python: a cursor naming chat `true` must not pass for chat 1."""
    response = client.get(history_path(1), params={"before": history_cursor(True, 5)})

    assert_validation_error(response, "query", "before")


def test_the_before_check_is_not_vacuous(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    """A cursor re-encoded from what the service's own holds is accepted: the 422s above
    come from what was changed, not from how the tests encode."""
    posted = post_many(container, chat["id"], 5)
    first = history(client, chat["id"], limit=2)
    payload = decode_cursor(first["next_before"])
    assert isinstance(payload, dict)
    assert set(payload) == {"k", "chat", "seq"}, payload

    again = history(client, chat["id"], limit=2, before=history_cursor(chat["id"], payload["seq"]))

    assert again["messages"] == posted[1:3]
    # The same place as a cursor made before the upgrade names it, by the message's id.
    by_id = id_cursor(chat["id"], posted[payload["seq"] - 1]["id"])
    assert history(client, chat["id"], limit=2, before=by_id) == again


def test_a_cursor_of_one_chat_is_refused_by_another(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    other = create_chat(client, "other")
    post_many(container, chat["id"], 5)
    post_many(container, other["id"], 5)
    mine = history(client, chat["id"], limit=2)["next_before"]
    theirs = history(client, other["id"], limit=2)["next_before"]
    from_show = get_chat(client, chat["id"], limit=2)["next_before"]

    for cursor in (mine, from_show):
        response = client.get(history_path(other["id"]), params={"before": cursor})
        assert_validation_error(response, "query", "before")
    response = client.get(history_path(chat["id"]), params={"before": theirs})
    assert_validation_error(response, "query", "before")


def test_a_cursor_by_id_of_another_chat_s_message_is_422(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    """An id cursor names its place by a message of the chat: one of another chat's messages
    is no place in this one, whatever chat the cursor claims."""
    other = create_chat(client, "other")
    post_many(container, chat["id"], 5)
    theirs = post_many(container, other["id"], 5)

    response = client.get(
        history_path(chat["id"]), params={"before": id_cursor(chat["id"], theirs[2]["id"])}
    )

    assert_validation_error(response, "query", "before")
    # The same id in a cursor that claims the other chat is that chat's place.
    page = history(client, other["id"], before=id_cursor(other["id"], theirs[2]["id"]))
    assert page["messages"] == theirs[:2]


def test_a_chat_list_cursor_from_the_service_is_refused_as_before(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    create_chat(client, "another")
    post_many(container, chat["id"], 3)
    listing = client.get("/chats/", params={"limit": 1})
    assert listing.status_code == 200, listing.text
    cursor = listing.json()["next_cursor"]

    response = client.get(history_path(chat["id"]), params={"before": cursor})

    assert_validation_error(response, "query", "before")


def test_the_cursor_is_checked_before_the_chat(client: httpx.Client, chat: Json) -> None:
    response = client.get(history_path(missing_chat_id(chat)), params={"before": "not-a-cursor"})
    assert_validation_error(response, "query", "before")


# --- OpenAPI ---------------------------------------------------------------------------------


def test_the_history_operation_is_documented(spec: Json) -> None:
    operation = spec["paths"]["/chats/{chat_id}/messages/"]["get"]
    assert operation["summary"]
    assert "before" in operation["description"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert set(parameters) == {"chat_id", "before", "after", "limit", "consistency-token"}
    assert parameters["chat_id"]["in"] == "path"
    assert parameters["chat_id"]["schema"]["type"] == "integer"

    limit = parameters["limit"]
    assert limit["in"] == "query"
    assert limit["schema"]["type"] == "integer"
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    assert limit["schema"]["default"] == 20

    before = parameters["before"]
    assert before["in"] == "query"
    assert before.get("required", False) is False
    declared = string_schema(before["schema"])
    assert declared.get("maxLength", MAX_CURSOR_LENGTH) <= MAX_CURSOR_LENGTH
    assert before.get("examples") or before["schema"].get("examples")

    body = resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(body["required"]) == {"chat_id", "messages"}  # next_before may be absent
    string_schema(body["properties"]["next_before"])
    backward, forward = body["examples"]  # one per mode: ?before= and ?after=
    assert set(backward) == {"chat_id", "messages", "next_before"}
    assert_cursor(backward["next_before"])
    assert set(forward) == {"chat_id", "messages", "next_after"}
    assert {"404", "422", "503"} <= set(operation["responses"])


def test_the_chat_declares_next_before_as_optional(spec: Json) -> None:
    operation = spec["paths"]["/chats/{chat_id}"]["get"]
    body = resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert "next_before" in body["properties"]
    assert "next_before" not in body.get("required", [])
    string_schema(body["properties"]["next_before"])


def test_the_documented_example_before_is_accepted(
    client: httpx.Client, container: Container, spec: Json
) -> None:
    operation = spec["paths"]["/chats/{chat_id}/messages/"]["get"]
    before = next(p for p in operation["parameters"] if p["name"] == "before")
    examples = before.get("examples") or before["schema"]["examples"]
    for example in examples:
        value = example["value"] if isinstance(example, dict) else example
        payload = decode_cursor(assert_cursor(value))
        # The example is a cursor of the chat it names. That chat may not exist here: a 404
        # still shows the cursor passed, since a cursor is checked before the chat (a 422).
        response = client.get(history_path(payload["chat"]), params={"before": value})
        if response.status_code != 200:
            assert_detail_error(response, 404)
