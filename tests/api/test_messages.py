"""Messages over HTTP: POST /chats/{chat_id}/messages/, their order, and concurrent posts."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

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

TEXT_MAX = 5000
MESSAGE_FIELDS = {"id", "chat_id", "seq", "text", "created_at", "author"}


def messages_path(chat_id: int) -> str:
    return f"/chats/{chat_id}/messages/"


def test_post_message_answers_201_with_exactly_the_message(
    client: httpx.Client, chat: Json
) -> None:
    response = client.post(messages_path(chat["id"]), json={"text": "See you at noon?"})

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    posted = response.json()
    assert set(posted) == MESSAGE_FIELDS
    assert_is_id(posted["id"])
    assert posted["chat_id"] == chat["id"]
    assert posted["text"] == "See you at noon?"
    assert_utc_timestamp(posted["created_at"])


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x", id="one-char"),
        pytest.param("  spaced  ", id="surrounding-spaces"),
        pytest.param("\n\nline\nbreaks\n", id="newlines"),
        pytest.param("\tCR LF\r\n", id="tab-and-crlf"),
        pytest.param(" x", id="leading-space"),
        pytest.param("Straße — 週末 🎉", id="unicode"),
        pytest.param("a" * TEXT_MAX, id="5000-chars"),
        pytest.param("😀" * TEXT_MAX, id="5000-emoji"),
        pytest.param(" " * (TEXT_MAX - 1) + "x", id="5000-mostly-spaces"),
        pytest.param('quotes " and \\ backslashes', id="json-escapes"),
    ],
)
def test_post_message_stores_the_text_exactly(client: httpx.Client, chat: Json, text: str) -> None:
    posted = post_message(client, chat["id"], text)

    assert posted["text"] == text
    shown = get_chat(client, chat["id"])
    assert shown["messages"] == [posted]
    assert shown["messages"][0]["text"] == text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"text": ""}, id="empty"),
        pytest.param({"text": " "}, id="space"),
        pytest.param({"text": " \t\r\n "}, id="whitespace-only"),
        pytest.param({"text": "\u3000\u00a0"}, id="unicode-whitespace-only"),
        pytest.param({"text": "a" * (TEXT_MAX + 1)}, id="5001-chars"),
        pytest.param({"text": "😀" * (TEXT_MAX + 1)}, id="5001-emoji"),
        pytest.param({"text": "a" * TEXT_MAX + " "}, id="5001-with-trailing-space"),
        pytest.param({}, id="missing"),
        pytest.param({"message": "hi"}, id="wrong-key"),
        pytest.param({"text": None}, id="null"),
        pytest.param({"text": 42}, id="int"),
        pytest.param({"text": False}, id="bool"),
        pytest.param({"text": ["hi"]}, id="list"),
        pytest.param({"text": {"hi": 1}}, id="object"),
        pytest.param({"text": "nul\x00inside"}, id="nul-inside"),
    ],
)
def test_post_message_rejects_an_invalid_text(client: httpx.Client, chat: Json, body: Json) -> None:
    assert_validation_error(client.post(messages_path(chat["id"]), json=body), "body", "text")
    assert get_chat(client, chat["id"])["message_count"] == 0


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"text": "\\ud800"}', id="lone-high-surrogate"),
        pytest.param(b'{"text": "half \\udfff pair"}', id="lone-low-surrogate"),
        pytest.param(b'{"text": "\\u0000"}', id="escaped-nul"),
    ],
)
def test_post_message_rejects_a_text_that_cannot_be_stored(
    client: httpx.Client, chat: Json, raw: bytes
) -> None:
    assert_validation_error(send_raw(client, messages_path(chat["id"]), raw), "body", "text")
    assert get_chat(client, chat["id"])["message_count"] == 0


def test_post_message_ignores_unknown_fields(client: httpx.Client) -> None:
    target = create_chat(client, "target")
    other = create_chat(client, "other")

    response = client.post(
        messages_path(target["id"]),
        json={
            "text": "hi",
            "chat_id": other["id"],
            "id": -5,
            "created_at": "2000-01-01T00:00:00Z",
        },
    )

    assert response.status_code == 201, response.text
    posted = response.json()
    assert set(posted) == MESSAGE_FIELDS
    assert posted["chat_id"] == target["id"]
    assert posted["id"] != -5
    assert assert_utc_timestamp(posted["created_at"]).year != 2000
    assert get_chat(client, target["id"])["messages"] == [posted]
    assert get_chat(client, other["id"])["messages"] == []


def test_post_message_answers_with_the_location_of_the_message(
    client: httpx.Client, chat: Json
) -> None:
    response = client.post(messages_path(chat["id"]), json={"text": "See you at noon?"})

    assert response.status_code == 201, response.text
    posted = response.json()
    assert response.headers["location"] == f"/chats/{chat['id']}/messages/{posted['id']}"
    shown = client.get(response.headers["location"])  # it resolves, to the message posted
    assert shown.status_code == 200, shown.text
    assert shown.json() == posted


def test_post_message_declares_its_location(spec: Json) -> None:
    responses = spec["paths"]["/chats/{chat_id}/messages/"]["post"]["responses"]
    location = deref(spec, responses["201"]["headers"]["Location"])  # a component, by $ref
    assert location["required"] is True
    assert location["schema"] == {"type": "string", "format": "uri-reference"}
    assert location["description"]
    # And where it leads is an operation of the document.
    get_message = spec["paths"]["/chats/{chat_id}/messages/{message_id}"]["get"]
    assert set(get_message["responses"]) >= {"200", "404", "422", "503"}


@pytest.mark.parametrize(
    "path", ["/chats/{chat_id}/messages/{id}", "/chats/{chat_id}/messages/{id}/"]
)
def test_get_message_shows_one_message(client: httpx.Client, chat: Json, path: str) -> None:
    first, second = post_messages(client, chat["id"], 2)

    response = client.get(path.format(chat_id=chat["id"], id=first["id"]))

    assert response.status_code == 200, response.text
    assert response.json() == first != second


def test_get_message_is_404_unless_the_message_is_in_that_chat(
    client: httpx.Client, chat: Json
) -> None:
    posted = post_message(client, chat["id"])
    other = create_chat(client, "another chat")
    for path in (
        f"/chats/{chat['id']}/messages/{posted['id'] + 1_000_000}",
        f"/chats/{missing_chat_id(chat)}/messages/{posted['id']}",
        f"/chats/{other['id']}/messages/{posted['id']}",
        f"/chats/{chat['id']}/messages/99999999999999999999",
        f"/chats/99999999999999999999/messages/{posted['id']}",
    ):
        assert_detail_error(client.get(path), 404)


def test_get_message_refuses_an_id_that_is_not_an_integer(client: httpx.Client, chat: Json) -> None:
    assert_validation_error(client.get(f"/chats/{chat['id']}/messages/abc"), "path", "message_id")


def test_post_message_to_a_missing_chat_is_404(client: httpx.Client, chat: Json) -> None:
    response = client.post(messages_path(missing_chat_id(chat)), json={"text": "hello?"})
    assert_detail_error(response, 404)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"text": ""}, id="empty"),
        pytest.param({"text": "   "}, id="blank"),
        pytest.param({}, id="missing"),
        pytest.param({"text": "a" * (TEXT_MAX + 1)}, id="too-long"),
    ],
)
def test_post_message_validates_the_body_before_looking_up_the_chat(
    client: httpx.Client, chat: Json, body: Json
) -> None:
    response = client.post(messages_path(missing_chat_id(chat)), json=body)
    assert_validation_error(response, "body", "text")


def test_messages_are_ordered_by_id_with_non_decreasing_created_at(
    client: httpx.Client, chat: Json
) -> None:
    posted = post_messages(client, chat["id"], 30)

    shown = get_chat(client, chat["id"], limit=100)["messages"]

    assert shown == posted
    ids = [m["id"] for m in shown]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    times = [assert_utc_timestamp(m["created_at"]) for m in shown]
    assert times == sorted(times)


def test_a_posted_message_is_readable_at_once(client: httpx.Client, chat: Json) -> None:
    for n in range(1, 6):
        posted = post_message(client, chat["id"], f"message {n}")
        shown = get_chat(client, chat["id"])
        assert shown["messages"][-1] == posted
        assert shown["message_count"] == n
        assert shown["last_message_at"] == posted["created_at"]


def run_together(tasks: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the requests on as many threads, released at once by a barrier."""
    barrier = threading.Barrier(len(tasks))

    def run(task: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(run, tasks))


def poster(client: httpx.Client, chat_id: int, text: str) -> Callable[[], httpx.Response]:
    return lambda: client.post(messages_path(chat_id), json={"text": text})


def test_concurrent_posts_lose_nothing_and_duplicate_nothing(
    client: httpx.Client, chat: Json
) -> None:
    # As many posts at once as the server has connections, so none waits for the pool.
    texts = [f"writer {w} message {n}" for w in range(4) for n in range(4)]

    responses = run_together([poster(client, chat["id"], text) for text in texts])

    assert [r.status_code for r in responses] == [201] * len(texts)
    posted = {r.json()["id"]: r.json() for r in responses}
    assert len(posted) == len(texts)
    shown = get_chat(client, chat["id"], limit=100)
    assert shown["message_count"] == len(texts)
    assert sorted(m["text"] for m in shown["messages"]) == sorted(texts)
    assert {m["id"]: m for m in shown["messages"]} == posted
    ids = [m["id"] for m in shown["messages"]]
    assert ids == sorted(ids)
    times = [assert_utc_timestamp(m["created_at"]) for m in shown["messages"]]
    assert times == sorted(times)


def test_no_message_outlives_a_chat_deleted_during_posts(
    client: httpx.Client, container: Container, chat: Json
) -> None:
    post_messages(client, chat["id"], 3)
    tasks = [poster(client, chat["id"], f"racing {n}") for n in range(12)]
    tasks.insert(6, lambda: client.delete(f"/chats/{chat['id']}"))

    responses = run_together(tasks)

    assert responses.pop(6).status_code == 204
    for response in responses:
        assert response.status_code in (201, 404), response.text
    assert_detail_error(client.get(f"/chats/{chat['id']}"), 404)
    container.job_runner().run_until_idle()  # the purge of the deleted chat's messages
    assert count_rows(container.write_engine(), "messages", chat_id=chat["id"]) == 0
    assert count_rows(container.write_engine(), "message_views", chat_id=chat["id"]) == 0
