"""Catching up over HTTP: GET /chats/{chat_id}/messages/?after=SEQ&limit=N pages forward by seq,
oldest first, with `next_after` to continue; 409 for a seq the chat has not reached."""

import time
from functools import partial
from typing import Any

import httpx
import pytest

from api.schemas import MessageResponse
from commands.post_message import PostMessage
from domain.principals import LOCAL
from infrastructure.container import Container
from tests.api.helpers import (
    Json,
    assert_detail_error,
    assert_not_500,
    assert_validation_error,
    create_chat,
    missing_chat_id,
    post_message,
    post_messages,
    resolve,
)
from tests.api.test_openapi import deref
from tests.support.servers import new_client
from tests.support.threads import run_in_threads

MESSAGE_FIELDS = {"id", "chat_id", "seq", "text", "created_at", "author"}
MAX_SEQ = 2**63 - 1
# A forward walk that has not reached the chat's end after this many pages is a failure.
MAX_PAGES = 1_000


def messages_path(chat_id: int) -> str:
    return f"/chats/{chat_id}/messages/"


def after_page(client: httpx.Client, chat_id: int, after: int, **params: Any) -> Json:
    """One forward page, checked for its shape: seqs after `after`, consecutive, oldest first."""
    response = client.get(messages_path(chat_id), params={"after": after, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: Json = response.json()
    assert set(body) in ({"chat_id", "messages"}, {"chat_id", "messages", "next_after"}), body
    assert body["chat_id"] == chat_id
    seqs = [message["seq"] for message in body["messages"]]
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), seqs
    for message in body["messages"]:
        assert set(message) == MESSAGE_FIELDS, message
        assert message["chat_id"] == chat_id
    if "next_after" in body:
        assert seqs, body  # only a page with messages can say where the next one starts
        assert body["next_after"] == seqs[-1], body
    return body


def walk_forward(client: httpx.Client, chat_id: int, after: int, **params: Any) -> list[Json]:
    """Pages from `after` to the chat's end, following `next_after`."""
    pages: list[Json] = []
    for _ in range(MAX_PAGES):
        page = after_page(client, chat_id, after, **params)
        pages.append(page)
        if "next_after" not in page:
            return pages
        after = page["next_after"]
    raise AssertionError(f"no end of the chat after {MAX_PAGES} pages")


def as_http(container: Container, chat_id: int, count: int) -> list[Json]:
    """Post `count` messages through the handler; each as POST would have answered it."""
    handler = container.post_message()
    return [
        MessageResponse.from_event(
            handler(PostMessage(chat_id=chat_id, text=f"message {n}", principal=LOCAL))
        ).model_dump(mode="json")
        for n in range(1, count + 1)
    ]


# --- pages -----------------------------------------------------------------------------------


def test_after_0_reads_the_chat_from_its_first_message(client: httpx.Client, chat: Json) -> None:
    posted = post_messages(client, chat["id"], 5)

    page = after_page(client, chat["id"], 0)

    assert page["messages"] == posted  # exactly as each POST answered, oldest first
    assert [message["seq"] for message in page["messages"]] == [1, 2, 3, 4, 5]
    assert "next_after" not in page  # the page reached the chat's end
    assert "next_before" not in page  # forward pages carry no backward cursor


@pytest.mark.parametrize("after", [1, 2, 4])
def test_after_a_seq_reads_only_what_follows_it(
    client: httpx.Client, chat: Json, after: int
) -> None:
    posted = post_messages(client, chat["id"], 5)

    page = after_page(client, chat["id"], after)

    assert page["messages"] == posted[after:]
    assert "next_after" not in page


def test_after_the_last_seq_is_an_empty_page_without_next_after(
    client: httpx.Client, chat: Json
) -> None:
    post_messages(client, chat["id"], 3)

    page = after_page(client, chat["id"], 3)

    assert page == {"chat_id": chat["id"], "messages": []}


def test_an_empty_chat_read_from_0_is_an_empty_page(client: httpx.Client, chat: Json) -> None:
    assert after_page(client, chat["id"], 0) == {"chat_id": chat["id"], "messages": []}


@pytest.mark.parametrize(("after", "limit", "seqs", "next_after"), [
    (0, 1, [1], 1),
    (0, 2, [1, 2], 2),
    (2, 2, [3, 4], 4),
    (3, 2, [4, 5], None),  # ends exactly at the last message: nothing follows
    (4, 2, [5], None),
    (0, 5, [1, 2, 3, 4, 5], None),
    (0, 100, [1, 2, 3, 4, 5], None),
])  # fmt: skip
def test_next_after_is_present_exactly_while_more_messages_follow(
    client: httpx.Client,
    chat: Json,
    after: int,
    limit: int,
    seqs: list[int],
    next_after: int | None,
) -> None:
    post_messages(client, chat["id"], 5)

    page = after_page(client, chat["id"], after, limit=limit)

    assert [message["seq"] for message in page["messages"]] == seqs
    assert page.get("next_after") == next_after


def test_the_default_page_is_20(client: httpx.Client, container: Container, chat: Json) -> None:
    posted = as_http(container, chat["id"], 21)

    page = after_page(client, chat["id"], 0)

    assert page["messages"] == posted[:20]
    assert page["next_after"] == 20


def test_250_messages_in_pages_of_100_give_every_seq_exactly_once(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    posted = as_http(container, chat["id"], 250)

    pages = walk_forward(client, chat["id"], 0, limit=100)

    assert [len(page["messages"]) for page in pages] == [100, 100, 50]
    assert [page.get("next_after") for page in pages] == [100, 200, None]
    read = [message for page in pages for message in page["messages"]]
    assert [message["seq"] for message in read] == list(range(1, 251))
    assert read == posted


def test_forward_pages_read_only_the_chat_they_name(
    client: httpx.Client, container: Container
) -> None:
    first, second = create_chat(client, "first"), create_chat(client, "second")
    mine = as_http(container, first["id"], 3)
    theirs = as_http(container, second["id"], 4)

    assert after_page(client, first["id"], 0)["messages"] == mine
    assert after_page(client, second["id"], 0)["messages"] == theirs
    assert after_page(client, first["id"], 2)["messages"] == mine[2:]


def test_the_path_without_its_trailing_slash_pages_forward_too(
    client: httpx.Client, chat: Json
) -> None:
    posted = post_messages(client, chat["id"], 2)

    response = client.get(f"/chats/{chat['id']}/messages", params={"after": 1})

    assert response.status_code == 200, response.text
    assert response.json() == {"chat_id": chat["id"], "messages": posted[1:]}


def test_paging_while_messages_are_posted_loses_and_repeats_nothing(
    client: httpx.Client, server_url: str, chat: Json
) -> None:
    """Six clients post 50 messages each while a reader pages forward 7 at a time, from the
    seq of the last message it has: it reads seq 1..300 exactly once, in order, as stored."""
    writers, per_writer, total = 6, 50, 300
    chat_id = chat["id"]
    read: list[Json] = []

    def write(writer: int) -> None:
        with new_client(server_url) as http:
            for n in range(per_writer):
                post_message(http, chat_id, f"writer {writer} message {n}")

    def follow() -> None:
        deadline = time.monotonic() + 60
        with new_client(server_url) as http:
            while len(read) < total:
                assert time.monotonic() < deadline, f"read {len(read)} of {total}"
                after = read[-1]["seq"] if read else 0
                page = after_page(http, chat_id, after, limit=7)
                read.extend(page["messages"])
                if not page["messages"]:
                    time.sleep(0.002)  # at the end for now: the writers are at work

    run_in_threads([*(partial(write, n) for n in range(writers)), follow])

    assert [message["seq"] for message in read] == list(range(1, total + 1))
    stored = walk_forward(client, chat_id, 0, limit=100)
    assert read == [message for page in stored for message in page["messages"]]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("after", "last_seq"), [(4, 3), (9, 3), (MAX_SEQ, 3), (1, 0)])
def test_an_after_beyond_the_chat_s_last_seq_is_409_naming_it(
    client: httpx.Client, chat: Json, after: int, last_seq: int
) -> None:
    post_messages(client, chat["id"], last_seq)

    response = client.get(messages_path(chat["id"]), params={"after": after})

    detail = assert_detail_error(response, 409)
    assert detail == (
        f"chat {chat['id']} has no message with seq {after}: its last seq is {last_seq}"
    )


def test_a_deleted_chat_read_forward_is_404(client: httpx.Client, chat: Json) -> None:
    post_messages(client, chat["id"], 2)
    assert client.delete(f"/chats/{chat['id']}").status_code == 204

    response = client.get(messages_path(chat["id"]), params={"after": 0})

    assert assert_detail_error(response, 404) == f"chat {chat['id']} not found"


def test_a_missing_chat_read_forward_is_404(client: httpx.Client, chat: Json) -> None:
    missing = missing_chat_id(chat)

    for after in (0, 5):  # not a 409: there is no chat whose end it could be past
        response = client.get(messages_path(missing), params={"after": after})
        assert assert_detail_error(response, 404) == f"chat {missing} not found"


@pytest.mark.parametrize("chat_id", ["0", "-1", "99999999999999999999"])
def test_an_impossible_chat_id_read_forward_is_404_or_422(
    client: httpx.Client, chat_id: str
) -> None:
    response = client.get(f"/chats/{chat_id}/messages/", params={"after": 0})
    assert_not_500(response)
    assert response.status_code in (404, 422), response.text


@pytest.mark.parametrize(
    "after",
    ["-1", "abc", "1.5", "", "1e3", "true", " 1", "+1", "1_0", str(MAX_SEQ + 1), "9" * 20],
)
def test_an_after_that_is_not_a_seq_is_422(client: httpx.Client, chat: Json, after: str) -> None:
    post_messages(client, chat["id"], 2)

    response = client.get(messages_path(chat["id"]), params={"after": after})

    assert_validation_error(response, "query", "after")


def test_an_after_that_is_not_a_seq_is_422_for_a_missing_chat_too(
    client: httpx.Client, chat: Json
) -> None:
    """The query is checked before the chat is looked up, as a body is."""
    response = client.get(messages_path(missing_chat_id(chat)), params={"after": -1})
    assert_validation_error(response, "query", "after")


def test_before_and_after_together_are_422(client: httpx.Client, chat: Json) -> None:
    post_messages(client, chat["id"], 3)
    newest = client.get(messages_path(chat["id"]), params={"limit": 1}).json()

    response = client.get(
        messages_path(chat["id"]), params={"before": newest["next_before"], "after": 0}
    )

    errors = assert_validation_error(response, "query", "after")
    assert errors == [
        {
            "loc": ["query", "after"],
            "msg": "before and after cannot be used together",
            "type": "value_error",
        }
    ]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
def test_an_invalid_limit_is_422_forward_too(client: httpx.Client, chat: Json, limit: str) -> None:
    response = client.get(messages_path(chat["id"]), params={"after": 0, "limit": limit})
    assert_validation_error(response, "query", "limit")


# --- the OpenAPI document --------------------------------------------------------------------


def history_operation(spec: Json) -> Json:
    found: Json = spec["paths"]["/chats/{chat_id}/messages/"]["get"]
    return found


def test_after_is_declared_as_an_optional_seq(spec: Json) -> None:
    declared = [p for p in history_operation(spec)["parameters"] if p["name"] == "after"]
    assert len(declared) == 1, history_operation(spec)["parameters"]
    after = declared[0]
    assert after["in"] == "query"
    assert after.get("required", False) is False
    integers = [s for s in after["schema"].get("anyOf", [after["schema"]]) if "type" in s]
    assert {s["type"] for s in integers} <= {"integer", "null"}
    (integer,) = [s for s in integers if s["type"] == "integer"]
    assert (integer["minimum"], integer["maximum"]) == (0, MAX_SEQ)
    assert "after" in after["description"]


def test_409_and_next_after_are_declared(spec: Json) -> None:
    responses = history_operation(spec)["responses"]
    conflict = deref(spec, responses["409"])  # a component, named by $ref
    schema = resolve(spec, conflict["content"]["application/json"]["schema"])
    assert schema["properties"]["detail"]["type"] == "string"
    example = conflict["content"]["application/json"]["example"]
    assert example == {"detail": "chat 1 has no message with seq 9: its last seq is 3"}

    page = resolve(spec, responses["200"]["content"]["application/json"]["schema"])
    assert page["properties"]["next_after"]["type"] == "integer"  # absent, never null
    assert "next_after" not in page.get("required", [])
    assert "next_before" not in page.get("required", [])
    for words in ("after", "next_after", "409", "422"):
        assert words in history_operation(spec)["description"], words
