"""Stream tickets: how a browser's EventSource, which cannot send headers, opens a chat's
event stream. A ticket is good once, for that chat and that caller, for 60 s; then a 401.
And when a stream ends: its user removed from the chat, or their token expired."""

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from infrastructure.container import Container
from tests.auth.conftest import bearer, token
from tests.auth.helpers import (
    Headers,
    add_member,
    create_chat,
    created,
    events,
    open_stream,
    post_message,
    refused,
)

ANN, BOB, CARL = (bearer(token(user)) for user in ("ann", "bob", "carl"))


def _ticket(client: httpx.Client, chat_id: int, headers: Headers) -> str:
    body = created(client.post(f"/chats/{chat_id}/events/tickets", headers=headers))
    ticket = body["ticket"]
    assert isinstance(ticket, str)
    return ticket


def test_a_ticket_opens_one_stream_without_a_header(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    message = post_message(secured, chat_id, ANN, "first")

    issued = secured.post(f"/chats/{chat_id}/events/tickets/", headers=BOB)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert set(body) == {"ticket", "expires_at"}, body
    ticket = body["ticket"]
    assert isinstance(ticket, str)
    assert len(ticket) >= 32, ticket
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.utcoffset() == timedelta(0), body
    left = (expires_at - datetime.now(UTC)).total_seconds()
    assert 50 <= left <= 61, body

    with events(secured, chat_id, ticket=ticket, after=0) as stream:
        event = stream.next()
        assert event.event == "message.posted", event
        assert event.json() == message
        assert stream.response.request.headers.get("authorization") is None
    # Spent: once only.
    refused(open_stream(secured, chat_id, ticket=ticket), ticket)
    refused(open_stream(secured, chat_id, ticket=ticket, after=0), ticket)

    # Each ticket is its own; the same caller may get several.
    first, second = _ticket(secured, chat_id, BOB), _ticket(secured, chat_id, BOB)
    assert first != second
    assert open_stream(secured, chat_id, ticket=second).status_code == 200
    assert open_stream(secured, chat_id, ticket=first).status_code == 200
    refused(open_stream(secured, chat_id, ticket=first), first)


def test_an_expired_ticket_is_refused(secured: httpx.Client, auth_container: Container) -> None:
    chat_id = create_chat(secured, ANN)
    ticket = _ticket(secured, chat_id, ANN)
    with auth_container.write_engine().begin() as connection:
        connection.execute(
            text("UPDATE stream_tickets SET expires_at = :past"),
            {"past": datetime.now(UTC) - timedelta(seconds=1)},
        )
    refused(open_stream(secured, chat_id, ticket=ticket), ticket)
    # Not made good again by a header either.
    refused(open_stream(secured, chat_id, ANN, ticket=ticket), ticket)


def test_a_ticket_is_for_its_chat_only(secured: httpx.Client) -> None:
    chat_a, chat_b = create_chat(secured, ANN, "a"), create_chat(secured, ANN, "b")
    ticket = _ticket(secured, chat_a, ANN)
    refused(open_stream(secured, chat_b, ticket=ticket), ticket)
    # Tried on another chat, it is spent all the same.
    refused(open_stream(secured, chat_a, ticket=ticket), ticket)
    # Nor for a chat that does not exist.
    other = _ticket(secured, chat_a, ANN)
    refused(open_stream(secured, chat_a + 1_000_000, ticket=other), other)


def test_a_ticket_is_for_its_caller_only(secured: httpx.Client, service_key: str) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    anns = _ticket(secured, chat_id, ANN)
    refused(open_stream(secured, chat_id, BOB, ticket=anns), anns)
    service_ticket = _ticket(secured, chat_id, bearer(service_key))
    refused(open_stream(secured, chat_id, ANN, ticket=service_ticket), service_ticket)
    # With its own caller's header beside it, a ticket is fine.
    own = _ticket(secured, chat_id, BOB)
    assert open_stream(secured, chat_id, BOB, ticket=own).status_code == 200
    # Bob's, asked with one token and opened beside a newer one of his: still bob's.
    own = _ticket(secured, chat_id, BOB)
    renewed = bearer(token("bob", exp=int(time.time()) + 7200))
    assert open_stream(secured, chat_id, renewed, ticket=own).status_code == 200
    # A service's ticket opens its stream as the service.
    service_ticket = _ticket(secured, chat_id, bearer(service_key))
    assert open_stream(secured, chat_id, ticket=service_ticket).status_code == 200


def test_a_non_member_gets_no_ticket(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    hidden = secured.post(f"/chats/{chat_id}/events/tickets", headers=BOB)
    missing = secured.post(f"/chats/{chat_id + 1_000_000}/events/tickets", headers=BOB)
    assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
    assert hidden.json() == {"detail": f"chat {chat_id} not found"}
    refused(secured.post(f"/chats/{chat_id}/events/tickets"))
    # A ticket bob got while a member does not outlive his membership.
    add_member(secured, chat_id, "bob", ANN)
    ticket = _ticket(secured, chat_id, BOB)
    assert secured.delete(f"/chats/{chat_id}/members/bob", headers=ANN).status_code == 204
    after_leaving = open_stream(secured, chat_id, ticket=ticket)
    assert after_leaving.status_code == 404, after_leaving.text


@pytest.mark.parametrize(
    "ticket",
    ["nope", "x" * 43, "x" * 65, "x" * 5000, "%00", "' OR 1=1 --"],
    ids=["short", "made-up", "too-long", "huge", "nul", "sql"],
)
def test_a_made_up_ticket_is_refused(secured: httpx.Client, ticket: str) -> None:
    chat_id = create_chat(secured, ANN)
    refused(open_stream(secured, chat_id, ticket=ticket))


def test_a_credential_is_no_ticket(secured: httpx.Client, service_key: str) -> None:
    chat_id = create_chat(secured, ANN)
    for credential in (token("ann"), service_key):
        refused(open_stream(secured, chat_id, ticket=credential), credential)
    # An empty ticket is no ticket: the header is then needed.
    refused(open_stream(secured, chat_id, ticket=""))
    assert open_stream(secured, chat_id, ANN, ticket="").status_code == 200


def test_a_removed_members_stream_ends_with_member_removed(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    add_member(secured, chat_id, "bob", ANN)
    ticket = _ticket(secured, chat_id, BOB)
    with (
        events(secured, chat_id, ticket=ticket) as bobs,
        events(secured, chat_id, ANN) as anns,
    ):
        message = post_message(secured, chat_id, ANN, "before")
        assert bobs.next().json() == message
        assert anns.next().json() == message
        assert secured.delete(f"/chats/{chat_id}/members/bob", headers=ANN).status_code == 204
        rest = bobs.rest()  # it ends
        assert [event.event for event in rest] == ["member.removed"], rest
        assert rest[0].json() == {"chat_id": chat_id, "user_id": "bob", "role": None}
        # The owner's stream goes on, and hears of it.
        removed = anns.next()
        assert removed.event == "member.removed", removed
        assert removed.json() == {"chat_id": chat_id, "user_id": "bob", "role": None}
        later = post_message(secured, chat_id, ANN, "after")
        assert anns.next().json() == later


def test_a_users_stream_ends_when_their_token_expires(secured: httpx.Client) -> None:
    chat_id = create_chat(secured, ANN)
    exp = int(time.time()) + 2
    short = bearer(token("ann", exp=exp))
    ticket = _ticket(secured, chat_id, short)
    started = time.monotonic()
    with (
        events(secured, chat_id, short) as by_header,
        events(secured, chat_id, ticket=ticket) as by_ticket,
    ):
        assert by_header.rest() == []
        assert by_ticket.rest() == []
    assert time.time() >= exp - 0.5
    assert time.monotonic() - started < 8


def test_a_ticket_does_not_outlive_the_token_it_was_made_with(
    secured: httpx.Client, auth_container: Container
) -> None:
    """A ticket redeemed once the token it was made with has expired is an expired
    credential: a 401, not a stream. (Forced: the token's expiry, as the ticket keeps it,
    set in the past, as it would be a second after a token with a second left.)"""
    chat_id = create_chat(secured, ANN)
    ticket = _ticket(secured, chat_id, ANN)
    with auth_container.write_engine().begin() as connection:
        connection.execute(
            text("UPDATE stream_tickets SET principal_expires_at = :past"),
            {"past": datetime.now(UTC) - timedelta(seconds=5)},
        )
    refused(open_stream(secured, chat_id, ticket=ticket), ticket)


def test_a_revoked_key_cannot_open_a_stream_with_a_ticket_it_made(
    secured: httpx.Client, service_key: str, auth_container: Container
) -> None:
    """Revoked at once, its tickets and its requests alike: a ticket made just before the
    revocation would otherwise open a stream that never ends (a service's has no expiry)."""
    headers = bearer(service_key)
    chat_id = create_chat(secured, headers)
    ticket = _ticket(secured, chat_id, headers)
    (info,) = auth_container.api_keys().list()
    auth_container.api_keys().revoke(info.id)
    refused(open_stream(secured, chat_id, headers), service_key)
    refused(open_stream(secured, chat_id, ticket=ticket), ticket)
