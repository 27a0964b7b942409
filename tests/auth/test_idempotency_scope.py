"""Idempotency keys are scoped to the caller: two callers never share a key's result, and a
caller's own retry still gets its first result."""

import httpx

from infrastructure.container import Container
from tests.auth.conftest import bearer, token
from tests.auth.helpers import Headers, add_member, create_chat, created

ANN, BOB = bearer(token("ann")), bearer(token("bob"))
KEY = "5f0c9a9e-8d4b-4a53-9a43-1c2de0a4c7b1"


def _keyed(headers: Headers, key: str = KEY) -> Headers:
    return {**headers, "Idempotency-Key": key}


def _create(client: httpx.Client, headers: Headers, title: str = "same") -> httpx.Response:
    return client.post("/chats/", json={"title": title}, headers=_keyed(headers))


def _post(
    client: httpx.Client, chat_id: int, headers: Headers, text: str = "same"
) -> httpx.Response:
    return client.post(f"/chats/{chat_id}/messages/", json={"text": text}, headers=_keyed(headers))


def test_two_users_with_one_key_create_two_chats(
    secured: httpx.Client, service_key: str, auth_container: Container
) -> None:
    _, other_key = auth_container.api_keys().create("another service")
    callers = [ANN, BOB, bearer(service_key), bearer(other_key)]
    first = [_create(secured, headers) for headers in callers]
    for response in first:
        assert response.status_code == 201, response.text
        assert "idempotent-replayed" not in response.headers, response.headers
    ids = [response.json()["id"] for response in first]
    assert len(set(ids)) == len(callers), ids
    # Each user owns their own chat, not the other's.
    for headers, chat_id in zip((ANN, BOB), ids, strict=False):
        assert secured.get(f"/chats/{chat_id}", headers=headers).status_code == 200
    assert secured.get(f"/chats/{ids[0]}", headers=BOB).status_code == 404

    # Each caller's retry gets their own first result.
    for headers, was in zip(callers, first, strict=True):
        again = _create(secured, headers)
        assert again.status_code == 201, again.text
        assert again.headers.get("idempotent-replayed") == "true", again.headers
        assert again.json() == was.json()
    listed = secured.get("/chats/", headers=bearer(service_key)).json()["chats"]
    assert sorted(chat["id"] for chat in listed) == sorted(ids)

    # Another caller's use of a key is no conflict: a different body is just a new chat.
    bob_again = _create(secured, BOB, "another title")
    assert bob_again.status_code == 422, bob_again.text  # his own key, another body
    carl = _create(secured, bearer(token("carl")), "another title")
    assert carl.status_code == 201, carl.text
    assert "idempotent-replayed" not in carl.headers


def test_two_members_with_one_key_post_two_messages(
    secured: httpx.Client, service_key: str
) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    anns = _post(secured, chat_id, ANN)
    bobs = _post(secured, chat_id, BOB)
    services = _post(secured, chat_id, bearer(service_key))
    for response in (anns, bobs, services):
        assert response.status_code == 201, response.text
        assert "idempotent-replayed" not in response.headers
    assert [r.json()["seq"] for r in (anns, bobs, services)] == [1, 2, 3]
    assert [r.json()["author"] for r in (anns, bobs, services)] == ["ann", "bob", None]

    for headers, was in ((ANN, anns), (BOB, bobs), (bearer(service_key), services)):
        again = _post(secured, chat_id, headers)
        assert again.status_code == 201, again.text
        assert again.headers.get("idempotent-replayed") == "true", again.headers
        assert again.json() == was.json()
        assert again.headers["location"] == was.headers["location"]
    detail = secured.get(f"/chats/{chat_id}", headers=ANN).json()
    assert detail["message_count"] == 3
    assert [m["author"] for m in detail["messages"]] == ["ann", "bob", None]

    # A key is still one caller's: another body under ann's key is a 422 for ann only.
    reused = _post(secured, chat_id, ANN, "something else")
    assert reused.status_code == 422, reused.text
    carl = bearer(token("carl"))
    add_member(secured, chat_id, "carl", ANN)
    assert created(_post(secured, chat_id, carl, "something else"))["author"] == "carl"
    assert secured.get(f"/chats/{chat_id}", headers=ANN).json()["message_count"] == 4


def test_a_replay_is_for_the_caller_only_even_once_they_left(secured: httpx.Client) -> None:
    """The replay of a user's post is theirs: after bob has left, his retry of a post he made
    as a member finds no chat, like any request of his about it."""
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    assert _post(secured, chat_id, BOB).status_code == 201
    assert secured.delete(f"/chats/{chat_id}/members/bob", headers=BOB).status_code == 204
    retry = _post(secured, chat_id, BOB)
    assert retry.status_code == 404, retry.text
    assert secured.get(f"/chats/{chat_id}", headers=ANN).json()["message_count"] == 1
