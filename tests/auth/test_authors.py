"""A message's `author`: the posting user's id, whatever they send; a service names it or
leaves it null; the CLI (the local caller) names it with --author."""

from typing import Any

import httpx
import pytest

from tests.auth.conftest import bearer, token
from tests.auth.helpers import (
    Headers,
    add_member,
    chatapi,
    create_chat,
    events,
    post_message,
    succeeded,
)

ANN, BOB = bearer(token("ann")), bearer(token("bob"))


def _everywhere(client: httpx.Client, chat_id: int, headers: Headers) -> dict[int, list[Any]]:
    """Each message's author as every read shows it: by message id, the authors seen in GET
    chat, history back, history forward, GET message, and the event stream."""
    seen: dict[int, list[Any]] = {}
    detail = client.get(f"/chats/{chat_id}", headers=headers).json()
    back = client.get(f"/chats/{chat_id}/messages/", headers=headers).json()
    forward = client.get(f"/chats/{chat_id}/messages/", params={"after": 0}, headers=headers).json()
    for page in (detail, back, forward):
        for message in page["messages"]:
            seen.setdefault(message["id"], []).append(message["author"])
    for message_id in list(seen):
        one = client.get(f"/chats/{chat_id}/messages/{message_id}", headers=headers).json()
        seen[message_id].append(one["author"])
    with events(client, chat_id, headers, after=0) as stream:
        for event in stream.take(len(seen)):
            assert event.event == "message.posted", event
            data = event.json()
            seen[data["id"]].append(data["author"])
    return seen


def test_a_users_message_is_theirs(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    posted = [
        post_message(secured, chat_id, ANN, "plain"),
        post_message(secured, chat_id, ANN, "named", author="ann"),
        post_message(secured, chat_id, BOB, "bob's"),
        post_message(secured, chat_id, BOB, "null", author=None),
    ]
    assert [m["author"] for m in posted] == ["ann", "ann", "bob", "bob"]
    for message in posted:
        assert set(message) >= {"id", "chat_id", "seq", "text", "created_at", "author"}
    seen = _everywhere(secured, chat_id, BOB)
    assert seen == {
        posted[0]["id"]: ["ann"] * 5,
        posted[1]["id"]: ["ann"] * 5,
        posted[2]["id"]: ["bob"] * 5,
        posted[3]["id"]: ["bob"] * 5,
    }


@pytest.mark.parametrize("author", ["bob", "Ann", "ann ", "", "x" * 129])
def test_a_user_naming_another_author_gets_a_422_and_nothing_is_stored(
    secured: httpx.Client, author: str
) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    response = secured.post(
        f"/chats/{chat_id}/messages/", json={"text": "as bob", "author": author}, headers=ANN
    )
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert isinstance(errors, list), errors
    assert any(error["loc"] == ["body", "author"] for error in errors), errors
    detail = secured.get(f"/chats/{chat_id}", headers=ANN).json()
    assert detail["messages"] == []
    assert detail["message_count"] == 0
    forward = secured.get(f"/chats/{chat_id}/messages/", params={"after": 0}, headers=ANN)
    assert forward.json()["messages"] == []
    # Nothing was used up either: the next message is seq 1.
    assert post_message(secured, chat_id, ANN, "as me")["seq"] == 1


def test_a_service_names_the_author_or_no_one(secured: httpx.Client, service_key: str) -> None:
    service = bearer(service_key)
    chat_id = create_chat(secured, ANN)
    named = post_message(secured, chat_id, service, "for carl", author="carl")
    unnamed = post_message(secured, chat_id, service, "from no one")
    null = post_message(secured, chat_id, service, "null", author=None)
    assert [named["author"], unnamed["author"], null["author"]] == ["carl", None, None]
    assert _everywhere(secured, chat_id, ANN) == {
        named["id"]: ["carl"] * 5,
        unnamed["id"]: [None] * 5,
        null["id"]: [None] * 5,
    }
    # An author is a user id: 1..128 characters.
    for author in ("", "x" * 129, 7):
        response = secured.post(
            f"/chats/{chat_id}/messages/", json={"text": "t", "author": author}, headers=service
        )
        assert response.status_code == 422, (author, response.text)
    longest = post_message(secured, chat_id, service, "long", author="x" * 128)
    assert longest["author"] == "x" * 128
    assert secured.get(f"/chats/{chat_id}", headers=ANN).json()["message_count"] == 4


def test_the_cli_names_the_author(
    secured: httpx.Client, service_key: str, database_url: str
) -> None:
    service = bearer(service_key)
    chat_id = create_chat(secured, ANN)
    printed = succeeded(
        chatapi(
            "post", str(chat_id), "from a script", "--author", "dave", database_url=database_url
        )
    )
    assert printed["author"] == "dave"
    assert printed["text"] == "from a script"
    stored = secured.get(f"/chats/{chat_id}/messages/{printed['id']}", headers=ANN)
    assert stored.status_code == 200, stored.text
    assert stored.json()["author"] == "dave"
    assert stored.json() == printed
    assert secured.get(f"/chats/{chat_id}", headers=service).json()["messages"][0] == printed
