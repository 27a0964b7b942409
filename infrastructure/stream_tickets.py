"""Stream tickets: how a browser's EventSource, which cannot send an Authorization header,
opens an event stream without a credential in its URL.

A ticket is 256 random bits, good for one stream of one chat, for the caller it was issued
to, within TICKET_TTL. Only its SHA-256 is stored (it is random: no pepper is needed to
make guessing hopeless); redeeming deletes it, so it opens one stream at most, and a
ticket used for another chat, or late, is spent all the same.
"""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select

from domain.errors import Unauthenticated
from domain.principals import Principal
from infrastructure.clock import Clock
from infrastructure.tables import api_keys, stream_tickets

TICKET_TTL = timedelta(seconds=60)

ISSUE = insert(stream_tickets)
REDEEM = (
    delete(stream_tickets)
    .where(stream_tickets.c.ticket_hash == bindparam("hash"))
    .returning(
        stream_tickets.c.chat_id,
        stream_tickets.c.principal_kind,
        stream_tickets.c.principal_id,
        stream_tickets.c.principal_expires_at,
        stream_tickets.c.expires_at,
    )
)
KEY_IN_USE = select(api_keys.c.id).where(
    api_keys.c.id == bindparam("key_id"), api_keys.c.revoked_at.is_(None)
)
PURGE = delete(stream_tickets).where(stream_tickets.c.expires_at < bindparam("now"))
# Longer than any ticket made here (43 characters); anything longer is not looked up.
MAX_TICKET_LENGTH = 64


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue(
    connection: Connection, chat_id: int, principal: Principal, now: datetime
) -> tuple[str, datetime]:
    """A new ticket for `principal` to open a stream of `chat_id`, and when it expires."""
    ticket = secrets.token_urlsafe(32)
    expires_at = now + TICKET_TTL
    connection.execute(
        ISSUE,
        {
            "ticket_hash": _hash(ticket),
            "chat_id": chat_id,
            "principal_kind": principal.kind,
            "principal_id": principal.id,
            "principal_expires_at": principal.expires_at,
            "expires_at": expires_at,
        },
    )
    return ticket, expires_at


def redeem(engine: Engine, clock: Clock, ticket: str, chat_id: int) -> Principal:
    """The caller the ticket was issued to, once: Unauthenticated if it is unknown, spent,
    expired, or for another chat."""
    if not 1 <= len(ticket) <= MAX_TICKET_LENGTH:
        raise Unauthenticated("the stream ticket is not valid")
    now = clock()
    with engine.begin() as connection:  # committed whatever the verdict: spent either way
        row = connection.execute(REDEEM, {"hash": _hash(ticket)}).first()
        problem = None if row is None else _problem(connection, row, chat_id, now)
    if row is None or problem is not None:
        raise Unauthenticated(problem or "the stream ticket is not valid, spent, or expired")
    kind = row.principal_kind
    assert kind in ("user", "service", "local")
    return Principal(kind, row.principal_id, row.principal_expires_at)


def _problem(connection: Connection, row: Any, chat_id: int, now: datetime) -> str | None:
    """Why a ticket found cannot open this stream, or None. The credential it was made with
    must still be good: a user's token not expired, a service's key not revoked since."""
    if row.chat_id != chat_id or row.expires_at <= now:
        return "the stream ticket is not valid, spent, or expired"
    if row.principal_expires_at is not None and row.principal_expires_at <= now:
        return "the token the stream ticket was made with has expired"
    service = row.principal_kind == "service"
    if service and connection.execute(KEY_IN_USE, {"key_id": row.principal_id}).first() is None:
        return "the API key the stream ticket was made with has been revoked"
    return None


def purge(connection: Connection, now: datetime) -> int:
    """Forget the tickets that expired unused, in the caller's transaction; how many."""
    return connection.execute(PURGE, {"now": now}).rowcount
