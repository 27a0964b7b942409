"""Event streams and membership: a removed member's streams end with `member.removed` and get
nothing after; every stream sees the chat's membership changes; a user's stream ends when
their token does. Counted exactly, under concurrent posts."""

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.auth.conftest import bearer, token
from tests.support.sse import EventReader, open_events

ANN, BOB, CAROL = bearer(token("ann")), bearer(token("bob")), bearer(token("carol"))


def chat_of_three(client: httpx.Client) -> int:
    """A chat owned by ann, with bob and carol as members."""
    created = client.post("/chats/", json={"title": "three"}, headers=ANN)
    assert created.status_code == 201, created.text
    chat_id: int = created.json()["id"]
    for user in ("bob", "carol"):
        added = client.put(f"/chats/{chat_id}/members/{user}", json={"role": "member"}, headers=ANN)
        assert added.status_code == 201, added.text
    return chat_id


def post(client: httpx.Client, chat_id: int, text: str, headers: dict[str, str]) -> int:
    response = client.post(f"/chats/{chat_id}/messages/", json={"text": text}, headers=headers)
    assert response.status_code == 201, response.text
    seq: int = response.json()["seq"]
    return seq


def messages_until(events: EventReader, count: int) -> list[int]:
    """The seqs of the next `count` message.posted events, skipping membership events."""
    seqs: list[int] = []
    while len(seqs) < count:
        event = events.next()
        if event.event == "message.posted":
            seqs.append(event.json()["seq"])
    return seqs


def test_a_removed_member_gets_member_removed_then_the_stream_ends(secured: httpx.Client) -> None:
    chat_id = chat_of_three(secured)
    path = f"/chats/{chat_id}/events"
    with (
        open_events(secured, path, after=0, headers=BOB) as bob,
        open_events(secured, path, after=0, headers=CAROL) as carol,
    ):
        assert post(secured, chat_id, "before", ANN) == 1
        assert messages_until(bob, 1) == [1]
        assert messages_until(carol, 1) == [1]

        removed = secured.delete(f"/chats/{chat_id}/members/bob", headers=ANN)
        assert removed.status_code == 204, removed.text
        assert post(secured, chat_id, "after", ANN) == 2

        rest = bob.rest()  # ends by itself: the server closes bob's stream
        assert [(e.event, e.json()) for e in rest] == [
            ("member.removed", {"chat_id": chat_id, "user_id": "bob", "role": None})
        ]
        # carol stays, and sees bob go and the message after.
        seen = [carol.next() for _ in range(2)]
        assert [(e.event, e.json().get("user_id"), e.json().get("seq")) for e in seen] == [
            ("member.removed", "bob", None),
            ("message.posted", None, 2),
        ]
    # bob can no longer open it: the chat is gone, for him.
    assert secured.get(path, headers=BOB).status_code == 404


def test_streams_see_members_added_and_roles_changed(secured: httpx.Client) -> None:
    chat_id = chat_of_three(secured)
    with open_events(secured, f"/chats/{chat_id}/events", headers=CAROL) as carol:
        put = secured.put(f"/chats/{chat_id}/members/dan", json={"role": "member"}, headers=ANN)
        assert put.status_code == 201, put.text
        put = secured.put(f"/chats/{chat_id}/members/dan", json={"role": "owner"}, headers=ANN)
        assert put.status_code == 200, put.text
        seen = [carol.next() for _ in range(2)]
    assert [(e.event, e.json()) for e in seen] == [
        ("member.added", {"chat_id": chat_id, "user_id": "dan", "role": "member"}),
        ("member.updated", {"chat_id": chat_id, "user_id": "dan", "role": "owner"}),
    ]


def test_a_users_stream_ends_when_their_token_expires(secured: httpx.Client) -> None:
    chat_id = chat_of_three(secured)
    expires = datetime.now(UTC) + timedelta(seconds=2)
    short = bearer(token("bob", exp=int(expires.timestamp())))
    started = time.monotonic()
    with open_events(secured, f"/chats/{chat_id}/events", after=0, headers=short) as bob:
        assert bob.rest() == []  # nothing happened, and it ended
    assert time.monotonic() - started < 6
    # The expired token opens nothing more: the client comes back with a new one.
    assert secured.get(f"/chats/{chat_id}/events", headers=short).status_code == 401


def test_concurrent_posts_reach_every_member_exactly_once_and_none_after_removal(
    secured: httpx.Client,
) -> None:
    chat_id = chat_of_three(secured)
    per_poster, posters = 20, 3
    path = f"/chats/{chat_id}/events"
    with (
        open_events(secured, path, after=0, headers=BOB) as bob,
        open_events(secured, path, after=0, headers=CAROL) as carol,
    ):

        def posting(headers: dict[str, str]) -> None:
            with httpx.Client(base_url=str(secured.base_url), timeout=30) as own:
                for n in range(per_poster):
                    post(own, chat_id, f"m{n}", headers)

        threads = [threading.Thread(target=posting, args=(h,)) for h in (ANN, BOB, CAROL)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = per_poster * posters
        assert messages_until(bob, total) == list(range(1, total + 1))
        assert messages_until(carol, total) == list(range(1, total + 1))

        assert secured.delete(f"/chats/{chat_id}/members/bob", headers=ANN).status_code == 204
        for n in range(5):
            post(secured, chat_id, f"later {n}", ANN)
        assert [e.event for e in bob.rest()] == ["member.removed"]
        later = [carol.next() for _ in range(6)]
        assert [e.event for e in later] == ["member.removed"] + ["message.posted"] * 5
        assert [e.json()["seq"] for e in later[1:]] == list(range(total + 1, total + 6))
