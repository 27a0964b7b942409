"""The chat endpoints: each builds a command or query and hands it to its handler.

Endpoints are `async def` and run the (blocking, database-bound) handler in the threadpool
themselves: one threadpool hop per request, where a `def` endpoint or a synchronous
dependency would add more; every wait on the way has a deadline (api/admission.py).
"""

from typing import Annotated

from fastapi import Header, Path, Query, Request, Response, status
from pydantic import StringConstraints, TypeAdapter, WithJsonSchema

from api.auth import Caller
from api.handling import container, handle, read, write
from api.params import DecimalInteger
from api.routing import SlashAgnosticRouter, Utf8JsonRoute
from api.schemas import (
    CONFLICT,
    CREATED_HEADERS,
    FORBIDDEN,
    MESSAGE_NOT_FOUND,
    NOT_FOUND,
    REPLAYED_HEADER,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    WRITE_HEADERS,
    ChatDetailResponse,
    ChatListResponse,
    ChatResponse,
    CreateChatRequest,
    HistoryResponse,
    MessageResponse,
    PostMessageRequest,
    message_json,
)
from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage
from domain.errors import InvalidInput
from domain.rules import (
    DEFAULT_LIMIT,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_ID,
    MAX_LIMIT,
)
from infrastructure.consistency import HEADER as CONSISTENCY_HEADER
from infrastructure.consistency import HEADER_PATTERN as CONSISTENCY_PATTERN
from queries.cursors import MAX_CURSOR_LENGTH
from queries.get_chat import GetChat
from queries.get_history import GetHistory
from queries.get_message import GetMessage
from queries.get_messages_after import GetMessagesAfter
from queries.list_chats import ListChats

router = SlashAgnosticRouter(
    tags=["chats"], responses={**UNAUTHORIZED, **UNAVAILABLE}, route_class=Utf8JsonRoute
)

ChatId = Annotated[int, Path(description="The chat's id.", examples=[1]), DecimalInteger]
MessageId = Annotated[int, Path(description="The message's id.", examples=[7]), DecimalInteger]
Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"How many of the newest messages to return, 1..{MAX_LIMIT}.",
    ),
    DecimalInteger,  # after Query: before it, OpenAPI would lose minimum and maximum
]
PageSize = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"How many to return, 1..{MAX_LIMIT}."),
    DecimalInteger,
]
ChatCursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="The `next_cursor` of the previous page; omit it for the first page.",
        examples=[
            "eyJrIjoiY2hhdHMiLCJhdCI6IjIwMjYtMTEtMjJUMTQ6MTA6NDkuODI5MTQwKzAwOjAwIiwiaWQiOjF9"
        ],
    ),
]
HistoryCursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description=(
            "A `next_before` from `GET /chats/{chat_id}` or from the previous page; omit it "
            "for the newest page."
        ),
        examples=["eyJrIjoiaGlzdG9yeSIsImNoYXQiOjEsInNlcSI6N30"],
    ),
]
ResumeAfter = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_ID,
        description=(
            "A message's `seq`: read the messages after it, oldest first (0: from the first). "
            "A `next_after`, or the `seq` of the last message a client has."
        ),
        examples=[0],
    ),
    # After Query: placed before it, the bounds reach the OpenAPI document as ge/le, not
    # minimum/maximum.
    DecimalInteger,
]

# The domain's rule for a key, validated as the header arrives and shown as its schema.
KeyText = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=IDEMPOTENCY_KEY_MAX_LENGTH, pattern=IDEMPOTENCY_KEY_PATTERN
    ),
]
IdempotencyKey = Annotated[
    KeyText | None,
    # Optional, but never null: a header is either sent or not.
    WithJsonSchema(
        {
            **TypeAdapter(KeyText).json_schema(),
            "examples": ["5f0c9a9e-8d4b-4a53-9a43-1c2de0a4c7b1"],
        }
    ),
    Header(
        description=(
            "Makes a retry safe: a request repeated with the same key and the same body gets "
            "the first response again (same status and body) and creates nothing new; the same "
            "key with a different body is a 422. Keys are scoped to the operation (and to the "
            "chat, for messages) and remembered for `IDEMPOTENCY_TTL` seconds (default 24 h). "
            f"1..{IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters, e.g. a UUID."
        ),
    ),
]

TokenText = Annotated[str, StringConstraints(pattern=CONSISTENCY_PATTERN)]
ConsistencyToken = Annotated[
    TokenText | None,
    WithJsonSchema({**TypeAdapter(TokenText).json_schema(), "examples": ["0/3000148"]}),
    Header(
        description=(
            "The `Consistency-Token` of a write's response: this read then shows that write "
            "(and every one before it), even when reads are served by replicas; it may wait "
            "briefly for one. Without it, a read served by a replica may be slightly stale."
        ),
    ),
]


def announce_created(
    response: Response, location: str, replayed: bool, consistency_token: str | None
) -> None:
    """Where the new resource is, whether this answer only repeats an earlier one, and the
    token a read brings back to see it."""
    response.headers["Location"] = location
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    announce_position(response, consistency_token)


def announce_position(response: Response, consistency_token: str | None) -> None:
    if consistency_token is not None:
        response.headers[CONSISTENCY_HEADER] = consistency_token


@router.get(
    "/chats/",
    operation_id="listChats",
    summary="List chats by last activity",
    response_description="One page of chats, most recent activity first.",
    response_model=ChatListResponse,
)
async def list_chats(
    request: Request,
    caller: Caller,
    limit: PageSize = DEFAULT_LIMIT,
    cursor: ChatCursor = None,
    consistency_token: ConsistencyToken = None,
) -> Response:
    """List the caller's chats, the one with the newest message (or, if empty, the newest
    chat) first: a user's own chats, or every chat for a service.

    Pages are keyset-based: pass `next_cursor` back as `cursor` for the next page; it is
    absent on the last page. Paging while messages arrive never repeats or skips a chat that
    did not move; a chat that gets a new message moves to the front of the list.
    """
    # The page's JSON written from the rows (queries/list_chats.py list_document: the same
    # bytes as ChatListResponse's, proved by a test), sent as it is.
    handler = container(request).list_chats_document()
    query = ListChats(limit, cursor, consistency_token, principal=caller)
    return Response(await read(request, handler, query), media_type="application/json")


@router.post(
    "/chats/",
    operation_id="createChat",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {
            "description": "The chat as created.",
            "headers": CREATED_HEADERS,
            # What a client can do next with the new chat's id (OpenAPI links).
            "links": {
                name: {"operationId": name, "parameters": {"chat_id": "$response.body#/id"}}
                for name in (
                    "getChat",
                    "postMessage",
                    "getHistory",
                    "getMessage",
                    "deleteChat",
                    "listMembers",
                    "putMember",
                    "removeMember",
                    "createStreamTicket",
                )
            },
        },
        **TOO_LARGE,
    },
    summary="Create a chat",
    response_description="The chat as created.",
)
async def create_chat(
    body: CreateChatRequest,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ChatResponse:
    """Create an empty chat. The title is trimmed of surrounding whitespace.

    A user who creates a chat is its owner; a service's chat has no members until it adds
    some (`PUT /chats/{chat_id}/members/{user_id}`).

    Sent again with the same `Idempotency-Key` and title, it answers the first 201 again
    (`Idempotent-Replayed: true`), and creates nothing: that chat may have been deleted
    since, and is then a 404 to read.
    """
    handler = container(request).create_chat()
    command = CreateChat(title=body.title, idempotency_key=idempotency_key, principal=caller)
    created = await handle(request, handler, command)
    announce_created(
        response, f"/chats/{created.chat_id}", created.replayed, created.consistency_token
    )
    return ChatResponse.from_event(created)


@router.post(
    "/chats/{chat_id}/messages/",
    operation_id="postMessage",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageResponse,
    summary="Post a message to a chat",
    response_description="The message as stored.",
    responses={
        201: {
            "description": "The message as stored.",
            "headers": CREATED_HEADERS,
            "links": {
                "getMessage": {
                    "operationId": "getMessage",
                    "parameters": {
                        "chat_id": "$request.path.chat_id",
                        "message_id": "$response.body#/id",
                    },
                }
            },
        },
        **NOT_FOUND,
        **TOO_LARGE,
    },
)
async def post_message(
    chat_id: ChatId,
    body: PostMessageRequest,
    request: Request,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append a message to a chat. The text is stored exactly as sent.

    Messages of one chat are ordered as their posts committed; `created_at` never decreases
    along that order. A user posts as themself (`author` is their id); a service may name
    the user it posts for in `author`.

    Sent again with the same `Idempotency-Key` and body, it answers the first 201 again
    (`Idempotent-Replayed: true`), and posts nothing: its chat may have been deleted since,
    and is then a 404 to read.
    """
    handler = container(request).post_message()
    command = PostMessage(
        chat_id=chat_id,
        text=body.text,
        idempotency_key=idempotency_key,
        author=body.author,
        principal=caller,
    )
    posted = await write(request, handler, command, chat_id=chat_id)
    # Serialised once, with its event: a returned model would be dumped again by FastAPI.
    document = message_json(posted)
    response = Response(document, status.HTTP_201_CREATED, media_type="application/json")
    location = f"/chats/{posted.chat_id}/messages/{posted.message_id}"
    announce_created(response, location, posted.replayed, posted.consistency_token)
    return response


@router.get(
    "/chats/{chat_id}",
    operation_id="getChat",
    summary="Read a chat with its last messages",
    response_description="The chat, its counters and its last `limit` messages, oldest first.",
    response_model=ChatDetailResponse,
    responses=NOT_FOUND,
)
async def get_chat(
    chat_id: ChatId,
    request: Request,
    caller: Caller,
    limit: Limit = DEFAULT_LIMIT,
    consistency_token: ConsistencyToken = None,
) -> Response:
    """Read a chat with its newest `limit` messages, in the order a chat window shows them."""
    # The read model writes the document itself: sent as it is, no model built from it
    # (queries/get_chat_document.py; the same JSON as ChatDetailResponse, proved by a test).
    handler = container(request).get_chat_document()
    query = GetChat(chat_id, limit, consistency_token, principal=caller)
    document = await read(request, handler, query)
    return Response(document, media_type="application/json")


@router.get(
    "/chats/{chat_id}/messages/",
    operation_id="getHistory",
    summary="Page through a chat's history, back or forward",
    response_description=(
        "One page of messages, oldest first: just older than `before`, or just after `after`."
    ),
    response_model=HistoryResponse,
    responses={**NOT_FOUND, **CONFLICT},
)
async def get_history(
    chat_id: ChatId,
    request: Request,
    caller: Caller,
    before: HistoryCursor = None,
    after: ResumeAfter = None,
    limit: PageSize = DEFAULT_LIMIT,
    consistency_token: ConsistencyToken = None,
) -> Response:
    """Page back from the newest message with `before`, or forward from a seq with `after`.

    **Back** (no `after`): the `limit` messages just older than the `before` cursor, oldest
    first; without `before`, the newest page. Pass `next_before` back as `before` to go
    further back; it is absent once the oldest message is reached.

    **Forward** (`after`, catching up): the `limit` messages whose `seq` follows `after`,
    oldest first; `after=0` starts at the chat's first message. Pass `next_after` back as
    `after` for the next page; it is present while more messages follow and absent once the
    page reaches the chat's last message, from which a client continues with the `seq` of the
    last message it has. An `after` beyond the chat's last seq is a 409 that names that seq,
    never an empty page; `before` and `after` together are a 422.

    Either way, a page costs the same however long the chat is and however far in it lies.
    """
    if after is not None:
        if before is not None:
            raise InvalidInput("after", "before and after cannot be used together")
        forward = container(request).get_messages_after()
        query = GetMessagesAfter(chat_id, after, limit, consistency_token, principal=caller)
        page = HistoryResponse.model_validate(await handle(request, forward, query))
        return Response(page.model_dump_json(), media_type="application/json")
    # Back: the page's JSON written from the rows (queries/get_history.py history_document:
    # the same bytes as HistoryResponse's, proved by a test), sent as it is.
    handler = container(request).get_history_document()
    backward = GetHistory(chat_id, before, limit, consistency_token, principal=caller)
    return Response(await read(request, handler, backward), media_type="application/json")


@router.get(
    "/chats/{chat_id}/messages/{message_id}",
    operation_id="getMessage",
    summary="Read one message of a chat",
    response_description="The message, as its `POST` returned it.",
    responses=MESSAGE_NOT_FOUND,
)
async def get_message(
    chat_id: ChatId,
    message_id: MessageId,
    request: Request,
    caller: Caller,
    consistency_token: ConsistencyToken = None,
) -> MessageResponse:
    """Read one message: where the `Location` of a posted message leads."""
    handler = container(request).get_message()
    query = GetMessage(chat_id, message_id, consistency_token, principal=caller)
    message = await handle(request, handler, query)
    return MessageResponse.model_validate(message)


@router.delete(
    "/chats/{chat_id}",
    operation_id="deleteChat",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a chat and all of its messages",
    response_class=Response,
    responses={
        204: {"description": "The chat is deleted.", "headers": WRITE_HEADERS},
        **FORBIDDEN,
        **NOT_FOUND,
        **TOO_LARGE,
    },
)
async def delete_chat(
    chat_id: ChatId, request: Request, response: Response, caller: Caller
) -> None:
    """Delete a chat with everything in it, at once however many messages it has: from the
    204 on, every operation on it is a 404 and its open streams get `chat.deleted`; its
    messages are purged afterwards by a background job, and its id is never used again. For
    its owners (and services): a member gets 403."""
    handler = container(request).delete_chat()
    command = DeleteChat(chat_id=chat_id, principal=caller)
    deleted = await handle(request, handler, command, chat_id=chat_id)
    announce_position(response, deleted.consistency_token)
