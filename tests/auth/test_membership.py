"""Membership: to a user who is not a member a chat does not exist (the same 404, byte for
byte, as a missing chat); members read and post, owners also manage members and delete;
`GET /chats/` lists a user's own chats; services may do everything, on every chat."""

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.auth.conftest import bearer, token
from tests.auth.helpers import (
    Headers,
    add_member,
    create_chat,
    listed_ids,
    member_ids,
    post_message,
    put_member,
)

ANN, BOB, CARL, DAVE = (bearer(token(user)) for user in ("ann", "bob", "carl", "dave"))


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with {chat} and {message} to fill in
    body: Any = None
    params: dict[str, Any] | None = None

    def send(self, client: httpx.Client, chat_id: int, message_id: int) -> httpx.Response:
        path = self.path.format(chat=chat_id, message=message_id)
        # A short read timeout: a stream that opened (a bug here) fails instead of hanging.
        return client.request(
            self.method, path, json=self.body, params=self.params, headers=BOB, timeout=5
        )


# Every operation on a chat, as the non-member bob tries it.
OPERATIONS = [
    Operation("GET", "/chats/{chat}"),
    Operation("GET", "/chats/{chat}", params={"limit": 5}),
    Operation("GET", "/chats/{chat}/messages/"),
    Operation("GET", "/chats/{chat}/messages/", params={"after": 0}),
    Operation("GET", "/chats/{chat}/messages/{message}"),
    Operation("GET", "/chats/{chat}/events"),
    Operation("GET", "/chats/{chat}/events", params={"after": 0}),
    Operation("GET", "/chats/{chat}/members/"),
    Operation("POST", "/chats/{chat}/events/tickets"),
    Operation("POST", "/chats/{chat}/messages/", body={"text": "let me in"}),
    Operation("POST", "/chats/{chat}/messages/", body={"text": "as me", "author": "bob"}),
    Operation("DELETE", "/chats/{chat}"),
    Operation("PUT", "/chats/{chat}/members/bob", body={"role": "owner"}),
    Operation("PUT", "/chats/{chat}/members/carl", body={"role": "member"}),
    Operation("PUT", "/chats/{chat}/members/ann", body={"role": "member"}),
    Operation("DELETE", "/chats/{chat}/members/bob"),
    Operation("DELETE", "/chats/{chat}/members/ann"),
]


def _answer(response: httpx.Response) -> tuple[int, bytes, str | None]:
    return response.status_code, response.content, response.headers.get("content-type")


def test_to_a_non_member_a_chat_is_missing_byte_for_byte(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN, "ann's")
    message_id = post_message(secured, chat_id, ANN, "secret plans")["id"]
    other_id = create_chat(secured, ANN, "another of ann's")
    hidden = [operation.send(secured, chat_id, message_id) for operation in OPERATIONS]
    for operation, response in zip(OPERATIONS, hidden, strict=True):
        assert response.status_code == 404, (operation, response.text)
        assert response.json() == {"detail": f"chat {chat_id} not found"}, (operation, response)
        assert "secret plans" not in response.text
    # None of it changed anything.
    detail = secured.get(f"/chats/{chat_id}", headers=ANN).json()
    assert [m["text"] for m in detail["messages"]] == ["secret plans"]
    assert member_ids(secured, chat_id, ANN) == ["ann"]
    assert listed_ids(secured, BOB) == []
    assert sorted(listed_ids(secured, ANN)) == sorted([chat_id, other_id])

    # The very same requests once the chat is gone: the same answers, byte for byte.
    assert secured.delete(f"/chats/{chat_id}", headers=ANN).status_code == 204
    missing = [operation.send(secured, chat_id, message_id) for operation in OPERATIONS]
    for operation, was_hidden, is_missing in zip(OPERATIONS, hidden, missing, strict=True):
        assert _answer(was_hidden) == _answer(is_missing), operation

    # And as for an id no chat ever had, but for the id itself.
    never = chat_id + 1_000_000
    for operation, was_hidden in zip(OPERATIONS, hidden, strict=True):
        status, body, content_type = _answer(operation.send(secured, never, message_id))
        renamed = body.replace(str(never).encode(), str(chat_id).encode())
        assert (status, renamed, content_type) == _answer(was_hidden), operation


def test_a_removed_member_finds_the_chat_missing(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    message_id = post_message(secured, chat_id, BOB, "from bob")["id"]
    assert secured.get(f"/chats/{chat_id}", headers=BOB).status_code == 200
    assert listed_ids(secured, BOB) == [chat_id]
    assert secured.delete(f"/chats/{chat_id}/members/bob", headers=ANN).status_code == 204
    for operation in OPERATIONS:
        response = operation.send(secured, chat_id, message_id)
        assert response.status_code == 404, (operation, response.text)
    assert listed_ids(secured, BOB) == []
    assert member_ids(secured, chat_id, ANN) == ["ann"]


def test_members_read_and_post_owners_also_manage(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    assert member_ids(secured, chat_id, ANN) == ["ann"]
    add_member(secured, chat_id, "bob", ANN)
    add_member(secured, chat_id, "carl", ANN)

    # A member reads and posts.
    message = post_message(secured, chat_id, BOB, "bob here")
    for path in (
        f"/chats/{chat_id}",
        f"/chats/{chat_id}/messages/",
        f"/chats/{chat_id}/messages/{message['id']}",
        f"/chats/{chat_id}/members/",
    ):
        assert secured.get(path, headers=BOB).status_code == 200, path
    assert secured.post(f"/chats/{chat_id}/events/tickets", headers=BOB).status_code == 201

    # ... and nothing an owner does: a 403 with a detail, and nothing changes.
    forbidden = [
        secured.delete(f"/chats/{chat_id}", headers=BOB),
        put_member(secured, chat_id, "dave", BOB),
        put_member(secured, chat_id, "bob", BOB, role="owner"),
        put_member(secured, chat_id, "carl", BOB, role="owner"),
        put_member(secured, chat_id, "ann", BOB, role="member"),
        secured.delete(f"/chats/{chat_id}/members/carl", headers=BOB),
        secured.delete(f"/chats/{chat_id}/members/ann", headers=BOB),
    ]
    for response in forbidden:
        assert response.status_code == 403, (response.request.url, response.text)
        assert set(response.json()) == {"detail"}, response.text
        assert isinstance(response.json()["detail"], str)
    roles = secured.get(f"/chats/{chat_id}/members/", headers=ANN).json()["members"]
    assert [(m["user_id"], m["role"]) for m in roles] == [
        ("ann", "owner"),
        ("bob", "member"),
        ("carl", "member"),
    ]
    assert secured.get(f"/chats/{chat_id}", headers=ANN).status_code == 200

    # A member may leave.
    left = secured.delete(f"/chats/{chat_id}/members/bob", headers=BOB)
    assert left.status_code == 204, left.text
    assert left.content == b""
    assert member_ids(secured, chat_id, ANN) == ["ann", "carl"]
    assert secured.get(f"/chats/{chat_id}", headers=BOB).status_code == 404

    # An owner removes a member; removing one who is not a member is a 404.
    assert secured.delete(f"/chats/{chat_id}/members/carl", headers=ANN).status_code == 204
    gone = secured.delete(f"/chats/{chat_id}/members/carl", headers=ANN)
    assert gone.status_code == 404, gone.text
    assert member_ids(secured, chat_id, ANN) == ["ann"]
    # An owner deletes the chat.
    assert secured.delete(f"/chats/{chat_id}", headers=ANN).status_code == 204
    assert secured.get(f"/chats/{chat_id}", headers=ANN).status_code == 404


def test_the_last_owner_stays(secured: httpx.Client, service_key: str) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    service = bearer(service_key)
    # Neither leaving nor being demoted, by themself or by a service.
    refusals = [
        secured.delete(f"/chats/{chat_id}/members/ann", headers=ANN),
        put_member(secured, chat_id, "ann", ANN, role="member"),
        secured.delete(f"/chats/{chat_id}/members/ann", headers=service),
        put_member(secured, chat_id, "ann", service, role="member"),
    ]
    for response in refusals:
        assert response.status_code == 409, (response.request.url, response.text)
        assert set(response.json()) == {"detail"}, response.text
    roles = secured.get(f"/chats/{chat_id}/members/", headers=ANN).json()["members"]
    assert [(m["user_id"], m["role"]) for m in roles] == [("ann", "owner"), ("bob", "member")]

    # With two owners, one may leave; then the other is the last one.
    promoted = put_member(secured, chat_id, "bob", ANN, role="owner")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "owner"
    assert secured.delete(f"/chats/{chat_id}/members/ann", headers=ANN).status_code == 204
    assert member_ids(secured, chat_id, BOB) == ["bob"]
    assert secured.delete(f"/chats/{chat_id}/members/bob", headers=BOB).status_code == 409
    assert put_member(secured, chat_id, "bob", BOB, role="member").status_code == 409
    # Setting the last owner's role again (owner) is no change, and fine.
    assert put_member(secured, chat_id, "bob", BOB, role="owner").status_code == 200

    # Two owners: one may also be made a plain member.
    add_member(secured, chat_id, "carl", BOB, role="owner")
    demoted = put_member(secured, chat_id, "bob", CARL, role="member")
    assert demoted.status_code == 200, demoted.text
    assert secured.delete(f"/chats/{chat_id}", headers=BOB).status_code == 403


def test_put_member_adds_then_changes(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    added = put_member(secured, chat_id, "bob", ANN)
    assert added.status_code == 201, added.text
    body = added.json()
    assert set(body) == {"user_id", "role", "added_at"}, body
    assert body["user_id"] == "bob"
    assert body["role"] == "member"
    added_at = datetime.fromisoformat(body["added_at"])
    assert added_at.utcoffset() == timedelta(0), body
    assert abs(added_at - datetime.now(UTC)) < timedelta(seconds=30), body

    again = put_member(secured, chat_id, "bob", ANN)
    assert again.status_code == 200, again.text
    assert again.json() == body  # set again: the same member, the same added_at

    changed = put_member(secured, chat_id, "bob", ANN, role="owner")
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**body, "role": "owner"}
    back = put_member(secured, chat_id, "bob", ANN, role="member")
    assert back.status_code == 200, back.text
    assert back.json() == body

    listed = secured.get(f"/chats/{chat_id}/members/", headers=BOB).json()
    assert set(listed) == {"members"}, listed
    assert listed["members"][1] == body
    for member in listed["members"]:
        assert set(member) == {"user_id", "role", "added_at"}, member

    # Invalid input: a 422, whoever asks, and nothing added.
    for role in ("admin", "", None, 1):
        invalid = secured.put(f"/chats/{chat_id}/members/dave", json={"role": role}, headers=ANN)
        assert invalid.status_code == 422, (role, invalid.text)
    assert secured.put(f"/chats/{chat_id}/members/dave", json={}, headers=ANN).status_code == 422
    too_long = put_member(secured, chat_id, "d" * 129, ANN)
    assert too_long.status_code == 422, too_long.text
    assert member_ids(secured, chat_id, ANN) == ["ann", "bob"]


def test_members_are_listed_in_join_order(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    for user_id in ("zed", "bob", "mia", "carl"):
        add_member(secured, chat_id, user_id, ANN)
    # A role change does not move anyone.
    assert put_member(secured, chat_id, "zed", ANN, role="owner").status_code == 200
    members = secured.get(f"/chats/{chat_id}/members/", headers=ANN).json()["members"]
    assert [m["user_id"] for m in members] == ["ann", "zed", "bob", "mia", "carl"]
    assert [m["role"] for m in members] == ["owner", "owner", "member", "member", "member"]
    times = [datetime.fromisoformat(m["added_at"]) for m in members]
    assert times == sorted(times)
    # Leaving and coming back: at the end, as a new member.
    assert secured.delete(f"/chats/{chat_id}/members/bob", headers=ANN).status_code == 204
    assert put_member(secured, chat_id, "bob", ANN).status_code == 201
    assert member_ids(secured, chat_id, ANN) == ["ann", "zed", "mia", "carl", "bob"]


def _page(client: httpx.Client, headers: Headers, **params: Any) -> dict[str, Any]:
    response = client.get("/chats/", params=params, headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert isinstance(page, dict)
    return page


def test_a_user_lists_only_their_chats_newest_activity_first(
    secured: httpx.Client, service_key: str
) -> None:
    mine = [create_chat(secured, ANN, f"ann {n}") for n in range(5)]
    bobs = create_chat(secured, BOB, "bob's")
    services = create_chat(secured, bearer(service_key), "the service's")
    shared = create_chat(secured, BOB, "shared")
    add_member(secured, shared, "ann", BOB)
    post_message(secured, mine[1], ANN, "news")  # mine[1] moves to the front

    expected = [mine[1], shared, mine[4], mine[3], mine[2], mine[0]]
    first = _page(secured, ANN, limit=2)
    assert [chat["id"] for chat in first["chats"]] == expected[:2]
    assert first["chats"][0]["last_message_preview"] == "news"
    second = _page(secured, ANN, limit=2, cursor=first["next_cursor"])
    assert [chat["id"] for chat in second["chats"]] == expected[2:4]
    third = _page(secured, ANN, limit=2, cursor=second["next_cursor"])
    assert [chat["id"] for chat in third["chats"]] == expected[4:]
    assert "next_cursor" not in third, third
    assert listed_ids(secured, ANN) == expected
    assert listed_ids(secured, ANN, limit=5) == expected

    assert listed_ids(secured, BOB, limit=2) == [shared, bobs]
    assert listed_ids(secured, CARL) == []
    assert _page(secured, CARL) == {"chats": []}
    # A service lists every chat, members or not.
    everything = listed_ids(secured, bearer(service_key), limit=3)
    assert sorted(everything) == sorted([*mine, bobs, services, shared])
    # Another user's cursor shows the caller nothing of theirs.
    carl_after_ann = _page(secured, CARL, limit=2, cursor=first["next_cursor"])
    assert carl_after_ann["chats"] == []


def test_a_service_may_do_everything_on_every_chat(secured: httpx.Client, service_key: str) -> None:
    service = bearer(service_key)
    users_chat = create_chat(secured, ANN, "ann's")
    assert secured.get(f"/chats/{users_chat}", headers=service).status_code == 200
    message = post_message(secured, users_chat, service, "from the bridge")
    assert message["author"] is None
    assert member_ids(secured, users_chat, service) == ["ann"]
    add_member(secured, users_chat, "bob", service)
    assert secured.delete(f"/chats/{users_chat}/members/bob", headers=service).status_code == 204

    # A chat a service creates has no members: no user sees it until added.
    chat_id = create_chat(secured, service, "the service's")
    listing = secured.get(f"/chats/{chat_id}/members/", headers=service)
    assert listing.status_code == 200, listing.text
    assert listing.json() == {"members": []}
    for headers in (ANN, BOB):
        assert secured.get(f"/chats/{chat_id}", headers=headers).status_code == 404
        assert chat_id not in listed_ids(secured, headers)
    # The service acts on it with no member at all.
    posted = post_message(secured, chat_id, service, "hello", author="ann")
    assert posted["author"] == "ann"  # naming a user does not make them a member
    assert secured.get(f"/chats/{chat_id}", headers=ANN).status_code == 404
    for path in (
        f"/chats/{chat_id}",
        f"/chats/{chat_id}/messages/",
        f"/chats/{chat_id}/messages/{posted['id']}",
    ):
        assert secured.get(path, headers=service).status_code == 200, path
    ticket = secured.post(f"/chats/{chat_id}/events/tickets", headers=service)
    assert ticket.status_code == 201, ticket.text

    # Added, a user sees it; as a member, not an owner.
    add_member(secured, chat_id, "ann", service)
    assert secured.get(f"/chats/{chat_id}", headers=ANN).json()["message_count"] == 1
    assert chat_id in listed_ids(secured, ANN)
    assert secured.delete(f"/chats/{chat_id}", headers=ANN).status_code == 403
    # Its only member may leave: a chat with no owner but no member either is fine.
    assert secured.delete(f"/chats/{chat_id}/members/ann", headers=ANN).status_code == 204
    assert secured.get(f"/chats/{chat_id}", headers=ANN).status_code == 404
    assert secured.delete(f"/chats/{chat_id}", headers=service).status_code == 204
    assert secured.get(f"/chats/{chat_id}", headers=service).status_code == 404


@pytest.mark.parametrize("user_id", ["a" * 129, " ", "%09", "%00", "a%00b"])
def test_a_user_id_in_a_path_is_checked(secured: httpx.Client, user_id: str) -> None:
    chat_id = create_chat(secured, ANN)
    response = put_member(secured, chat_id, user_id, ANN)
    assert response.status_code == 422, response.text
    response = secured.delete(f"/chats/{chat_id}/members/{user_id}", headers=ANN)
    assert response.status_code == 422, response.text
    assert member_ids(secured, chat_id, ANN) == ["ann"]


def _send_together(
    client: httpx.Client, barrier: threading.Barrier, method: str, path: str, headers: Headers
) -> int:
    body = {"role": "member"} if method == "PUT" else None
    barrier.wait()
    return client.request(method, path, json=body, headers=headers).status_code


def test_two_owners_leaving_at_once_leave_one_owner(secured: httpx.Client) -> None:
    """The last-owner rule holds under concurrency: of two owners who leave (or demote each
    other) at the same moment, one succeeds and the other gets 409."""
    for attempt in range(6):
        chat_id = create_chat(secured, ANN)
        add_member(secured, chat_id, "bob", ANN, role="owner")
        if attempt % 2 == 0:
            requests = [
                ("DELETE", f"/chats/{chat_id}/members/ann", ANN),
                ("DELETE", f"/chats/{chat_id}/members/bob", BOB),
            ]
        else:
            requests = [
                ("PUT", f"/chats/{chat_id}/members/bob", ANN),
                ("PUT", f"/chats/{chat_id}/members/ann", BOB),
            ]
        barrier = threading.Barrier(len(requests))
        with ThreadPoolExecutor(len(requests)) as pool:
            futures = [
                pool.submit(_send_together, secured, barrier, *request) for request in requests
            ]
            statuses = sorted(future.result() for future in futures)
        # One wins; the other is then the last owner (409) or, demoted, no owner (403).
        assert statuses in ([204, 409], [200, 403], [200, 409]), (attempt, statuses)
        members = secured.get(f"/chats/{chat_id}/members/", headers=bearer(token("x")))
        assert members.status_code == 404
        roles = [
            m["role"]
            for user in (ANN, BOB)
            for response in [secured.get(f"/chats/{chat_id}/members/", headers=user)]
            if response.status_code == 200
            for m in response.json()["members"]
        ]
        assert "owner" in roles, (attempt, roles)
