"""Chats over HTTP: POST /chats/, GET /chats/{chat_id}, DELETE /chats/{chat_id}."""

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from infrastructure.container import Container
from tests.api.helpers import (
    Json,
    assert_detail_error,
    assert_is_id,
    assert_utc_timestamp,
    assert_validation_error,
    create_chat,
    get_chat,
    missing_chat_id,
    post_message,
    post_messages,
    send_raw,
)
from tests.api.test_openapi import deref
from tests.support.database import count_rows

TITLE_MAX = 200
CHAT_FIELDS = {"id", "title", "created_at"}
MESSAGE_FIELDS = {"id", "chat_id", "seq", "text", "created_at", "author"}


# --- POST /chats/ ----------------------------------------------------------------------------


def test_create_chat_answers_201_with_exactly_the_chat(client: httpx.Client) -> None:
    response = client.post("/chats/", json={"title": "Weekend plans"})

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == CHAT_FIELDS
    assert_is_id(body["id"])
    assert body["title"] == "Weekend plans"
    assert_utc_timestamp(body["created_at"])


def test_create_chat_answers_with_the_location_of_the_chat(client: httpx.Client) -> None:
    response = client.post("/chats/", json={"title": "Weekend plans"})

    assert response.status_code == 201, response.text
    chat = response.json()
    assert response.headers["location"] == f"/chats/{chat['id']}"
    shown = client.get(response.headers["location"])  # it resolves, to the chat created
    assert shown.status_code == 200, shown.text
    assert {field: shown.json()[field] for field in CHAT_FIELDS} == chat


def test_create_chat_declares_its_location(spec: Json) -> None:
    headers = spec["paths"]["/chats/"]["post"]["responses"]["201"]["headers"]
    location = deref(spec, headers["Location"])  # a component, named by $ref
    assert location["required"] is True
    assert location["schema"] == {"type": "string", "format": "uri-reference"}
    assert location["description"]


def test_created_chats_get_distinct_ids(client: httpx.Client) -> None:
    ids = [create_chat(client, f"chat {n}")["id"] for n in range(3)]
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        pytest.param("x", "x", id="one-char"),
        pytest.param("  Weekend plans \n", "Weekend plans", id="trimmed"),
        pytest.param("\t\r\n Weekend\t \r\n", "Weekend", id="trimmed-all-whitespace-kinds"),
        pytest.param("  a  b  ", "a  b", id="inner-whitespace-kept"),
        pytest.param("a" * TITLE_MAX, "a" * TITLE_MAX, id="200-chars"),
        pytest.param("😀" * TITLE_MAX, "😀" * TITLE_MAX, id="200-emoji"),
        pytest.param("  " + "a" * TITLE_MAX + " \n\t ", "a" * TITLE_MAX, id="200-after-trim"),
        pytest.param("Straße — 週末 🎉", "Straße — 週末 🎉", id="unicode"),
    ],
)
def test_create_chat_stores_the_trimmed_title(client: httpx.Client, sent: str, stored: str) -> None:
    response = client.post("/chats/", json={"title": sent})

    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == CHAT_FIELDS
    assert created["title"] == stored
    assert get_chat(client, created["id"])["title"] == stored


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"title": ""}, id="empty"),
        pytest.param({"title": " "}, id="space"),
        pytest.param({"title": " \t\r\n "}, id="whitespace-only"),
        pytest.param({"title": "\u3000\u00a0"}, id="unicode-whitespace-only"),
        pytest.param({"title": "a" * (TITLE_MAX + 1)}, id="201-chars"),
        pytest.param({"title": "😀" * (TITLE_MAX + 1)}, id="201-emoji"),
        pytest.param({"title": "  " + "a" * (TITLE_MAX + 1) + "  "}, id="201-after-trim"),
        pytest.param({}, id="missing"),
        pytest.param({"Title": "x"}, id="wrong-case-key"),
        pytest.param({"title": None}, id="null"),
        pytest.param({"title": 42}, id="int"),
        pytest.param({"title": 1.5}, id="float"),
        pytest.param({"title": True}, id="bool"),
        pytest.param({"title": ["x"]}, id="list"),
        pytest.param({"title": {"text": "x"}}, id="object"),
        pytest.param({"title": "a\x00b"}, id="nul-inside"),
        pytest.param({"title": "\x00"}, id="nul-only"),
    ],
)
def test_create_chat_rejects_an_invalid_title(client: httpx.Client, body: Json) -> None:
    assert_validation_error(client.post("/chats/", json=body), "body", "title")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"title": "\\ud800"}', id="lone-high-surrogate"),
        pytest.param(b'{"title": "a\\udfffb"}', id="lone-low-surrogate"),
        pytest.param(b'{"title": "a\\u0000b"}', id="escaped-nul"),
    ],
)
def test_create_chat_rejects_a_title_that_cannot_be_stored(
    client: httpx.Client, raw: bytes
) -> None:
    assert_validation_error(send_raw(client, "/chats/", raw), "body", "title")


def test_create_chat_accepts_an_escaped_surrogate_pair(client: httpx.Client) -> None:
    response = send_raw(client, "/chats/", b'{"title": "\\ud83d\\ude00"}')
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "😀"


def test_create_chat_ignores_unknown_fields(client: httpx.Client) -> None:
    response = client.post(
        "/chats/",
        json={
            "title": "Weekend plans",
            "id": -5,
            "created_at": "2000-01-01T00:00:00Z",
            "messages": [{"text": "smuggled"}],
            "color": "red",
        },
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == CHAT_FIELDS
    assert created["id"] != -5
    assert assert_utc_timestamp(created["created_at"]).year != 2000
    shown = get_chat(client, created["id"])
    assert shown["messages"] == []
    assert "color" not in shown


# --- GET /chats/{chat_id} --------------------------------------------------------------------


def test_get_empty_chat(client: httpx.Client, chat: Json) -> None:
    response = client.get(f"/chats/{chat['id']}")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    shown = response.json()
    assert {*CHAT_FIELDS, "messages", "message_count", "last_message_at"} <= set(shown)
    assert {key: shown[key] for key in CHAT_FIELDS} == chat
    assert shown["messages"] == []
    assert shown["message_count"] == 0
    assert shown["last_message_at"] is None


def test_get_chat_shows_what_was_posted(client: httpx.Client, chat: Json) -> None:
    posted = post_message(client, chat["id"], "See you at noon?")

    shown = get_chat(client, chat["id"])

    assert {key: shown[key] for key in CHAT_FIELDS} == chat
    assert shown["messages"] == [posted]
    assert set(shown["messages"][0]) == MESSAGE_FIELDS
    assert shown["message_count"] == 1
    assert shown["last_message_at"] == posted["created_at"]
    assert_utc_timestamp(shown["last_message_at"])


@pytest.mark.parametrize(
    ("posted", "limit", "first", "last"),
    [
        pytest.param(25, None, 6, 25, id="default-20-of-25"),
        pytest.param(25, 1, 25, 25, id="limit-1"),
        pytest.param(25, 24, 2, 25, id="limit-24-of-25"),
        pytest.param(25, 25, 1, 25, id="limit-25-of-25"),
        pytest.param(25, 100, 1, 25, id="limit-100-of-25"),
        pytest.param(3, None, 1, 3, id="default-with-3"),
        pytest.param(101, 100, 2, 101, id="limit-100-of-101"),
    ],
)
def test_get_chat_returns_the_last_limit_messages_oldest_first(
    client: httpx.Client, chat: Json, posted: int, limit: int | None, first: int, last: int
) -> None:
    messages = post_messages(client, chat["id"], posted)
    params: dict[str, Any] = {} if limit is None else {"limit": limit}

    shown = get_chat(client, chat["id"], **params)

    assert [m["text"] for m in shown["messages"]] == [
        f"message {n}" for n in range(first, last + 1)
    ]
    assert shown["messages"] == messages[first - 1 : last]
    assert shown["message_count"] == posted
    assert shown["last_message_at"] == messages[-1]["created_at"]


@pytest.mark.parametrize(
    "limit", ["0", "101", "-1", "abc", "1.5", "", "true", "99999999999999999999"]
)
def test_get_chat_rejects_an_invalid_limit(client: httpx.Client, chat: Json, limit: str) -> None:
    post_message(client, chat["id"])
    response = client.get(f"/chats/{chat['id']}", params={"limit": limit})
    assert_validation_error(response, "query", "limit")


def test_get_chat_checks_the_limit_before_the_chat(client: httpx.Client, chat: Json) -> None:
    response = client.get(f"/chats/{missing_chat_id(chat)}", params={"limit": 0})
    assert_validation_error(response, "query", "limit")


def test_get_missing_chat_is_404(client: httpx.Client, chat: Json) -> None:
    assert_detail_error(client.get(f"/chats/{missing_chat_id(chat)}"), 404)


# --- DELETE /chats/{chat_id} -----------------------------------------------------------------


def test_delete_chat_answers_204_with_an_empty_body(client: httpx.Client, chat: Json) -> None:
    post_messages(client, chat["id"], 3)

    response = client.delete(f"/chats/{chat['id']}")

    assert response.status_code == 204, response.text
    assert response.content == b""


def test_deleted_chat_is_gone_for_every_operation(client: httpx.Client, chat: Json) -> None:
    post_messages(client, chat["id"], 2)
    assert client.delete(f"/chats/{chat['id']}").status_code == 204

    assert_detail_error(client.get(f"/chats/{chat['id']}"), 404)
    assert_detail_error(client.delete(f"/chats/{chat['id']}"), 404)
    response = client.post(f"/chats/{chat['id']}/messages/", json={"text": "too late"})
    assert_detail_error(response, 404)


def test_delete_chat_deletes_its_messages(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    doomed = post_messages(client, chat["id"], 5)
    assert count_rows(container.write_engine(), "messages", chat_id=chat["id"]) == 5

    assert client.delete(f"/chats/{chat['id']}").status_code == 204
    # Gone to every read at once; its messages go with the purge, a background job.
    assert_detail_error(client.get(f"/chats/{chat['id']}/messages/"), 404)
    container.job_runner().run_until_idle()

    assert count_rows(container.write_engine(), "messages", chat_id=chat["id"]) == 0
    assert count_rows(container.write_engine(), "message_views", chat_id=chat["id"]) == 0
    # A chat created afterwards starts empty and never shows a deleted message.
    fresh = create_chat(client, "fresh")
    assert fresh["id"] != chat["id"]
    assert get_chat(client, fresh["id"])["messages"] == []
    mine = post_messages(client, fresh["id"], 5)
    shown = get_chat(client, fresh["id"])
    assert shown["messages"] == mine
    assert shown["message_count"] == 5
    assert not {m["id"] for m in doomed} & {m["id"] for m in shown["messages"]}


def test_the_database_itself_cascades_to_messages(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    """ON DELETE CASCADE is in the schema: a bare SQL delete of the chat takes its messages."""
    post_messages(client, chat["id"], 3)

    with container.write_engine().begin() as connection:
        connection.execute(text("DELETE FROM chats WHERE id = :id"), {"id": chat["id"]})

    assert count_rows(container.write_engine(), "messages", chat_id=chat["id"]) == 0


def test_delete_chat_leaves_other_chats_alone(client: httpx.Client) -> None:
    doomed = create_chat(client, "doomed")
    kept = create_chat(client, "kept")
    post_messages(client, doomed["id"], 3)
    kept_messages = post_messages(client, kept["id"], 3)
    before = get_chat(client, kept["id"])

    assert client.delete(f"/chats/{doomed['id']}").status_code == 204

    after = get_chat(client, kept["id"])
    assert after == before
    assert after["messages"] == kept_messages
    assert after["message_count"] == 3


def test_delete_missing_chat_is_404(client: httpx.Client, chat: Json) -> None:
    assert_detail_error(client.delete(f"/chats/{missing_chat_id(chat)}"), 404)
    assert get_chat(client, chat["id"])["id"] == chat["id"]
