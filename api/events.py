"""`GET /chats/{chat_id}/events`: a chat's messages as Server-Sent Events, live and resumable.

The endpoint checks the caller, reads the first page (after the resume point, or only where
the chat ends) and answers 404/409/429/503 before anything is streamed; from then on the
stream is api/live's: its own reads until it is at the chat's end, then its chat's writer.
The stream is followed (api/live/chats.py) *before* that first read: a message committed
after the read began wakes the chat's writer, and one committed before is in the read.
Either way it is sent once, in seq order, with no gap.

A stream reads as its caller: a user's reads find the chat only while they are a member, and
their stream ends with `member.removed` when they are removed; every stream sends the chat's
membership changes from its start on (`member.added`, `member.updated`, `member.removed`).
A user's stream ends when their token expires, for the client to come back with a new one
and `Last-Event-ID`.
"""

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyQuery
from pydantic import BaseModel, WithJsonSchema

from api.auth import Caller, Credentials, auth_required, caller, principal_of
from api.chats import ChatId
from api.handling import container, handle
from api.live.chats import LiveChats
from api.live.news import News, NewsReader
from api.live.response import EventStream
from api.live.sse import CHAT_DELETED, MEMBER_EVENTS, MESSAGE_POSTED, RETRY_MILLISECONDS
from api.params import DecimalInteger
from api.routing import SlashAgnosticRouter
from api.schemas import (
    CONFLICT,
    MESSAGE_EXAMPLE,
    NOT_FOUND,
    RETRY_AFTER_HEADER,
    SCHEMAS,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    ChatDeletedData,
    MemberChangeData,
    MessageResponse,
    StreamTicketResponse,
    error_response,
    headers,
)
from api.stream_slots import StreamSlots
from commands.issue_stream_ticket import IssueStreamTicket
from domain.errors import Unauthenticated
from domain.principals import Principal
from domain.rules import MAX_ID
from queries.get_messages_after import GetMessagesAfter

STREAMS_BUSY_DETAIL = "too many open event streams on this server"
SHUTTING_DOWN_DETAIL = "this server is shutting down: reconnect to another"
USER_STREAMS_DETAIL = "too many open event streams for this user: close one first"

router = SlashAgnosticRouter(tags=["chats"])

RESUME_SEQ = "a message's `seq`: the stream sends what follows it (0: from the first message)"
After = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_ID,
        description=(
            f"Where to resume: {RESUME_SEQ}. For the first connection of a client that has some "
            "messages already; a browser reconnecting sends `Last-Event-ID` instead. Without "
            "either, the stream starts with the next new message."
        ),
        examples=[7],
    ),
    # After Query: placed before it, the bounds reach the OpenAPI document as ge/le, which
    # JSON Schema does not know, not as minimum/maximum.
    DecimalInteger,
]
LastEventId = Annotated[
    int | None,
    DecimalInteger,
    # Optional, but never null: a header is either sent or not.
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_ID, "examples": [7]}),
    Header(
        ge=0,
        le=MAX_ID,
        description=(
            f"Where to resume: {RESUME_SEQ}. A browser's `EventSource` sends it by itself when it "
            "reconnects, to the URL it opened, `after` included: so with both, this one is "
            "used, and must not be before `after`."
        ),
        examples=[7],
    ),
]


# A browser's EventSource cannot send headers: it brings a ticket in the URL instead, made
# by POST /chats/{chat_id}/events/tickets. Declared as a security scheme of the stream.
TICKET = APIKeyQuery(
    name="ticket",
    scheme_name="streamTicket",
    auto_error=False,
    description=(
        "A single-use ticket from `POST /chats/{chat_id}/events/tickets`, good for 60 s, for "
        "one stream of that chat, as the caller who made it: for browsers' EventSource. "
        "Never a token or an API key: credentials are not accepted in a URL."
    ),
)
Ticket = Annotated[str | None, Depends(TICKET)]


@dataclass(frozen=True, slots=True)
class EventKind:
    """A kind of event the stream sends, as the OpenAPI document declares it."""

    event: str  # its `event:` field
    schema: str  # the name of its schema in the document
    data: type[BaseModel]  # what its `data:` holds, as JSON
    description: str


EVENT_KINDS = (
    EventKind(
        MESSAGE_POSTED,
        "MessagePostedEvent",
        MessageResponse,
        "A message, as `POST /chats/{chat_id}/messages/` returned it; `id` is its `seq`.",
    ),
    EventKind(
        CHAT_DELETED,
        "ChatDeletedEvent",
        ChatDeletedData,
        "The chat is deleted: the stream ends after it.",
    ),
    EventKind(
        MEMBER_EVENTS["added"],
        "MemberAddedEvent",
        MemberChangeData,
        "A user became a member of the chat.",
    ),
    EventKind(
        MEMBER_EVENTS["updated"],
        "MemberUpdatedEvent",
        MemberChangeData,
        "A member's role changed.",
    ),
    EventKind(
        MEMBER_EVENTS["removed"],
        "MemberRemovedEvent",
        MemberChangeData,
        "A member left or was removed (`role` null); a user's own stream ends after it.",
    ),
)
CHAT_EVENT = "ChatEvent"  # any of them
SEQ_TEXT = r"^[1-9][0-9]*$"  # a seq, as an event's `id`


def event_schema(kind: EventKind) -> dict[str, Any]:
    """An event as OpenAPI 3.2 models a Server-Sent Event: an object of its fields, here with
    `data` a JSON text."""
    posted = kind.event == MESSAGE_POSTED
    return {
        "title": kind.schema,
        "description": kind.description,
        "type": "object",
        "properties": {
            "event": {"type": "string", "const": kind.event},
            "data": {
                "type": "string",
                "description": f"A `{kind.data.__name__}`, as JSON text.",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"{SCHEMAS}{kind.data.__name__}"},
            },
            "id": {
                "type": "string",
                "pattern": SEQ_TEXT,
                "description": (
                    "The message's `seq`: what `Last-Event-ID` brings back to resume after it."
                    if posted
                    else "Not sent with it: a client keeps the last `id` the stream sent."
                ),
            },
            "retry": {
                "type": "integer",
                "minimum": 0,
                "description": "On the stream's first event: how many milliseconds a client "
                "waits before it reconnects.",
            },
        },
        "required": ["event", "data", "id"] if posted else ["event", "data"],
    }


def stream_schemas() -> dict[str, dict[str, Any]]:
    """The schemas of the stream's events, for the document's components."""
    schemas = {kind.schema: event_schema(kind) for kind in EVENT_KINDS}
    schemas[CHAT_EVENT] = {
        "title": CHAT_EVENT,
        "description": "An event of a chat's stream (`GET /chats/{chat_id}/events`), told "
        "apart by its `event` field.",
        "oneOf": [{"$ref": f"{SCHEMAS}{kind.schema}"} for kind in EVENT_KINDS],
        "discriminator": {
            "propertyName": "event",
            "mapping": {kind.event: f"{SCHEMAS}{kind.schema}" for kind in EVENT_KINDS},
        },
    }
    return schemas


EXAMPLE_DATA = MessageResponse.model_validate(MESSAGE_EXAMPLE).model_dump_json()
EXAMPLE_DELETED = ChatDeletedData(chat_id=1).model_dump_json()
WIRE_EXAMPLE = (
    f"retry: {RETRY_MILLISECONDS}\n"
    f"id: 7\nevent: {MESSAGE_POSTED}\ndata: {EXAMPLE_DATA}\n\n"
    ": ping - 2026-11-22 14:11:04.829140+00:00\n"
    f"event: {CHAT_DELETED}\ndata: {EXAMPLE_DELETED}\n\n"
)
EVENTS_DESCRIPTION = f"""\
A `text/event-stream` that stays open: the chat's events, each a `ChatEvent`.

- `{MESSAGE_POSTED}`, one per message, in `seq` order, each exactly once: `id` is the
  message's `seq`, `data` the message as `POST /chats/{{chat_id}}/messages/` returned it.
  First every message after the resume point, from storage, then each new one as it is posted.
- `{CHAT_DELETED}`, `data` `{{"chat_id"}}`, when the chat is deleted; the stream ends after it.
- `member.added`, `member.updated`, `member.removed`, `data` `{{"chat_id", "user_id", "role"}}`
  (`role` null once removed), as the chat's membership changes. A user's own stream gets
  `member.removed` when they are removed, and ends after it.

The stream's first line is `retry: {RETRY_MILLISECONDS}`, a field of its first event. A comment
line (`: ping ...`) comes every `STREAM_HEARTBEAT` seconds: the heartbeat, which is no event.
A user's stream ends when their token expires (a ticket's stream, when the token it was made
with does): reconnect with a new one and `Last-Event-ID`.

On the wire (lines end with CRLF):

```
{WIRE_EXAMPLE}```
"""
# The same stream, as its schema reads it: an array of its events.
EVENTS_EXAMPLE = [
    {"event": MESSAGE_POSTED, "id": "7", "data": EXAMPLE_DATA, "retry": RETRY_MILLISECONDS},
    {"event": CHAT_DELETED, "id": "7", "data": EXAMPLE_DELETED},
]
RESPONSES = {
    200: {
        "description": EVENTS_DESCRIPTION,
        "content": {
            "text/event-stream": {
                # Each event (OpenAPI 3.2's itemSchema, where FastAPI's own streams declare it).
                "itemSchema": {"$ref": f"{SCHEMAS}{CHAT_EVENT}"},
                # The whole stream, read as an array of its events (OpenAPI 3.2).
                "schema": {"type": "array", "items": {"$ref": f"{SCHEMAS}{CHAT_EVENT}"}},
                "example": EVENTS_EXAMPLE,
            }
        },
    },
    **UNAUTHORIZED,
    **NOT_FOUND,
    **CONFLICT,
    429: error_response(
        "The user has `MAX_STREAMS_PER_USER` streams open on this server already; close one, "
        "or retry after the given delay.",
        USER_STREAMS_DETAIL,
        headers=headers(RETRY_AFTER_HEADER),
    ),
    503: error_response(
        "This server has `MAX_STREAMS` streams open already, or the database is unreachable; "
        "retry after the given delay.",
        STREAMS_BUSY_DETAIL,
        headers=headers(RETRY_AFTER_HEADER),
    ),
}


def resume_point(after: int | None, last_event_id: int | None) -> int | None:
    """The seq to resume after, from either parameter.

    With both, Last-Event-ID wins if it is not before `after`: a browser that opened
    `...?after=5` reconnects to that same URL with the id of the last event it received, which
    came after 5. One before `after` comes from no such client: a 422, not a guess.
    """
    if after is None or last_event_id is None:
        return after if last_event_id is None else last_event_id
    if last_event_id < after:
        raise RequestValidationError(
            [
                {
                    "loc": ["header", "last-event-id"],
                    "msg": f"Last-Event-ID ({last_event_id}) is before after ({after}): "
                    "send one of them",
                    "type": "value_error",
                }
            ]
        )
    return last_event_id


async def stream_caller(
    chat_id: ChatId, request: Request, credentials: Credentials, ticket: Ticket
) -> Principal:
    """The stream's caller: from its ticket (spent now), else as every endpoint finds it. A
    ticket beside an Authorization header must be that caller's."""
    if ticket is None:
        return await caller(request, credentials)
    redeem = container(request).redeem_stream_ticket
    ticket_owner = await handle(request, lambda t: redeem(ticket=t, chat_id=chat_id), ticket)
    if credentials is not None and auth_required(request):
        bearer = await principal_of(request, credentials.credentials)
        if not bearer.is_same_caller(ticket_owner):
            raise Unauthenticated("the stream ticket was made for another caller")
    return ticket_owner


StreamCaller = Annotated[Principal, Depends(stream_caller)]


@router.post(
    "/chats/{chat_id}/events/tickets",
    operation_id="createStreamTicket",
    status_code=status.HTTP_201_CREATED,
    summary="Get a ticket to open the chat's event stream from a browser",
    response_description="The ticket, and when it expires unused.",
    responses={**UNAUTHORIZED, **NOT_FOUND, **TOO_LARGE, **UNAVAILABLE},
)
async def create_stream_ticket(
    chat_id: ChatId, request: Request, caller: Caller
) -> StreamTicketResponse:
    """A single-use ticket for `GET /chats/{chat_id}/events?ticket=...`, good for 60 s.

    A browser's `EventSource` cannot send an `Authorization` header, and a token in a URL
    would end up in logs and histories: the page asks for a ticket with its token, then
    opens the stream with the ticket. To reconnect, it gets a new ticket and sends
    `?after=` the last `seq` it has.
    """
    handler = container(request).issue_stream_ticket()
    ticket = await handle(request, handler, IssueStreamTicket(chat_id, principal=caller))
    return StreamTicketResponse.model_validate(ticket)


@router.get(
    "/chats/{chat_id}/events",
    operation_id="streamEvents",
    status_code=200,
    summary="Follow a chat live (Server-Sent Events)",
    # Its media type is set per response, so OpenAPI takes the 200's from RESPONSES and puts
    # the error bodies under application/json, as they are sent.
    response_class=EventStream,
    response_description="The chat's events, as they happen.",
    responses=RESPONSES,
)
async def stream_events(
    chat_id: ChatId,
    request: Request,
    caller: StreamCaller,
    after: After = None,
    last_event_id: LastEventId = None,
) -> Response:
    """Follow a chat: each new message as a `message.posted` event, then `chat.deleted`.

    Resuming: with `Last-Event-ID` (sent by a browser's `EventSource` when it reconnects) or
    `?after=SEQ`, the stream first sends every message after that seq from storage, then
    continues live, with no gap and no duplicate. A resume point beyond the chat's last seq
    is a 409, a missing chat a 404, both before the stream starts. A subscriber that stops
    reading for `STREAM_SEND_TIMEOUT` seconds is disconnected; it resumes with its last id.

    Credentials: `Authorization: Bearer`, or (browsers) a `ticket` from
    `POST /chats/{chat_id}/events/tickets`.
    """
    app = container(request)
    settings = app.settings()
    live: LiveChats = request.app.state.live
    start = resume_point(after, last_event_id)
    if live.count >= settings.max_streams or live.closing:
        return JSONResponse(
            {"detail": SHUTTING_DOWN_DETAIL if live.closing else STREAMS_BUSY_DETAIL},
            status_code=503,
            headers={"Retry-After": str(settings.retry_after)},
        )
    slots: StreamSlots = request.app.state.stream_slots
    release = slots.take(caller)
    if release is None:
        return JSONResponse(
            {"detail": USER_STREAMS_DETAIL},
            status_code=429,
            headers={"Retry-After": str(settings.retry_after)},
        )
    handler = app.stream_messages_after()  # on the primary, where the hints come from
    news = NewsReader(partial(handle, request), lambda: handler, app.stream_member_events)

    async def read(seq: int, member_position: int | None) -> News:
        return await news.read(chat_id, seq, member_position, caller)

    # Before the first read: see the module's docstring.
    stream = live.open(chat_id, caller)
    try:
        if start is None:
            # Only what comes next: from the chat's end as this read finds it.
            query = GetMessagesAfter(chat_id, 0, 1, principal=caller)
            end = await handle(request, handler, query)
            first = News((), end.last_seq, end.last_member_event, at_end=True)
        else:
            # Membership changes from the feed's position now on, not its history.
            first = await read(start, None)
    except BaseException:
        live.close(stream)  # a 404, 409 or 503: no stream
        release()
        raise
    return EventStream(stream, live, first, read, release)
