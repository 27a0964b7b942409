"""What goes over HTTP: request bodies, response bodies, error bodies, the events' data, and
the responses and headers the OpenAPI document declares once for many operations."""

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.config import JsonDict

from domain.events import ChatCreated, MessagePosted, Role
from domain.principals import USER_ID_MAX_LENGTH
from domain.rules import (
    CONTROL_CHARACTERS,
    TEXT_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    normalize_title,
    validate_text,
)
from infrastructure.consistency import HEADER as CONSISTENCY_HEADER
from infrastructure.consistency import PATTERN as CONSISTENCY_PATTERN

EXAMPLE_TIME = "2026-11-22T14:10:49.829140Z"
# One example message, shown wherever a message appears in /docs.
MESSAGE_EXAMPLE: JsonDict = {
    "id": 7,
    "chat_id": 1,
    "seq": 7,
    "text": "See you at noon?",
    "created_at": EXAMPLE_TIME,
    "author": "ann",
}

# What str.strip() and str.isspace() count as whitespace, as a regex character class: JSON
# Schema's \s is narrower (it lacks \x1c-\x1f and \x85, for one).
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The domain rules (domain/rules.py) as patterns, so the OpenAPI document states them: no
# control character but tab, newline and carriage return; a text not blank; a title of
# 1..200 characters once trimmed (of whitespace, which may include controls: trimmed away).
C = CONTROL_CHARACTERS
TEXT_PATTERN = rf"^[^{C}]*[^{C}{WHITESPACE}][^{C}]*$"
# A user's id (domain/principals.py): kept exactly, not blank, no NUL.
USER_ID_PATTERN = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"
TITLE_PATTERN = (
    rf"^[{WHITESPACE}]*[^{C}{WHITESPACE}]"
    rf"(?:[^{C}]{{0,{TITLE_MAX_LENGTH - 2}}}[^{C}{WHITESPACE}])?[{WHITESPACE}]*$"
)

# A cursor field is left out when there is nothing more, never null, so it is a string.
Cursor = Annotated[
    str | None,
    WithJsonSchema({"type": "string"}),
    Field(exclude_if=lambda value: value is None),
]
# The same for a seq to continue from: an integer when present.
SeqCursor = Annotated[
    int | None,
    WithJsonSchema({"type": "integer", "minimum": 1}),
    Field(exclude_if=lambda value: value is None),
]


class CreateChatRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Weekend plans"}]})

    title: Annotated[
        str,
        AfterValidator(normalize_title),
        Field(
            description=(
                f"Trimmed of surrounding whitespace, then 1..{TITLE_MAX_LENGTH} characters."
            ),
            min_length=1,
            examples=["Weekend plans"],
            json_schema_extra={"pattern": TITLE_PATTERN},
        ),
    ]


class PostMessageRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "See you at noon?"}]})

    author: Annotated[
        str | None,
        Field(
            description=(
                "Who wrote it. A user posts as themself: leave it out (or give their own id). "
                "A service names the user it posts for, or leaves it out (no author)."
            ),
            min_length=1,
            max_length=USER_ID_MAX_LENGTH,
            pattern=USER_ID_PATTERN,
            examples=["ann"],
        ),
    ] = None

    text: Annotated[
        str,
        AfterValidator(validate_text),
        Field(
            description=(
                f"Stored exactly as sent; 1..{TEXT_MAX_LENGTH} characters, not whitespace only."
            ),
            min_length=1,
            max_length=TEXT_MAX_LENGTH,
            examples=["See you at noon?"],
            json_schema_extra={"pattern": TEXT_PATTERN},
        ),
    ]


class ChatResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": 1, "title": "Weekend plans", "created_at": EXAMPLE_TIME}]
        }
    )

    id: int
    title: str
    created_at: datetime

    @classmethod
    def from_event(cls, created: ChatCreated) -> "ChatResponse":
        return cls(id=created.chat_id, title=created.title, created_at=created.created_at)


class MessageResponse(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [MESSAGE_EXAMPLE]},
    )

    id: int
    chat_id: int
    seq: int = Field(
        description="The message's place in its chat: 1, 2, 3, ... without gaps, in the order "
        "the posts committed. Event streams use it as the event id."
    )
    text: str
    created_at: datetime
    author: str | None = Field(
        description="The user who wrote it; null when no one was named, and for every "
        "message stored before authors existed."
    )

    @classmethod
    def from_event(cls, posted: MessagePosted) -> "MessageResponse":
        return cls(
            id=posted.message_id,
            chat_id=posted.chat_id,
            seq=posted.seq,
            text=posted.text,
            created_at=posted.created_at,
            author=posted.author,
        )


def message_json(posted: MessagePosted) -> str:
    """A posted message as its 201 answers it and its `message.posted` event carries it: made
    once for both (the chat's writer encodes the event before the endpoint answers, and its
    JSON is then at hand here)."""
    return _message_json(
        posted.message_id, posted.chat_id, posted.seq, posted.text, posted.created_at, posted.author
    )


# A post is answered moments after its writer encoded it: the few posts in flight at once.
@lru_cache(maxsize=64)
def _message_json(
    message_id: int, chat_id: int, seq: int, text: str, created_at: datetime, author: str | None
) -> str:
    message = MessageResponse(
        id=message_id, chat_id=chat_id, seq=seq, text=text, created_at=created_at, author=author
    )
    return message.model_dump_json()


class ChatDetailResponse(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "title": "Weekend plans",
                    "created_at": EXAMPLE_TIME,
                    "message_count": 1,
                    "last_message_at": EXAMPLE_TIME,
                    "messages": [MESSAGE_EXAMPLE],
                    "next_before": "eyJrIjoiaGlzdG9yeSIsImNoYXQiOjEsInNlcSI6N30",
                }
            ]
        },
    )

    id: int
    title: str
    created_at: datetime
    message_count: int = Field(description="How many messages the chat holds in all.")
    last_message_at: datetime | None = Field(
        description="When the newest message was posted; null for an empty chat."
    )
    messages: list[MessageResponse] = Field(
        description="The last `limit` messages of the chat, oldest first."
    )
    next_before: Cursor = Field(
        default=None,
        description=(
            "Opaque cursor for `GET /chats/{chat_id}/messages/?before=...`, the messages older "
            "than these; absent when there are none."
        ),
    )


class ChatSummaryResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    created_at: datetime
    message_count: int = Field(description="How many messages the chat holds in all.")
    last_message_at: datetime | None = Field(
        description="When the newest message was posted; null for an empty chat."
    )
    last_activity_at: datetime = Field(
        description="What the list is ordered by: `last_message_at`, or `created_at` if empty."
    )
    last_message_preview: str | None = Field(
        description="The first 100 characters of the newest message; null for an empty chat."
    )


class ChatListResponse(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "chats": [
                        {
                            "id": 1,
                            "title": "Weekend plans",
                            "created_at": EXAMPLE_TIME,
                            "message_count": 1,
                            "last_message_at": EXAMPLE_TIME,
                            "last_activity_at": EXAMPLE_TIME,
                            "last_message_preview": "See you at noon?",
                        }
                    ],
                    "next_cursor": (
                        "eyJrIjoiY2hhdHMiLCJhdCI6IjIwMjYtMTEtMjJUMTQ6MTA6NDkuODI5MTQwKzAwOjAwIiwiaWQiOjF9"
                    ),
                }
            ]
        },
    )

    chats: list[ChatSummaryResponse] = Field(description="Most recent activity first.")
    next_cursor: Cursor = Field(
        default=None,
        description="Opaque cursor of the next page (`?cursor=`); absent on the last page.",
    )


class HistoryResponse(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "chat_id": 1,
                    "messages": [MESSAGE_EXAMPLE],
                    "next_before": "eyJrIjoiaGlzdG9yeSIsImNoYXQiOjEsInNlcSI6N30",
                },
                {"chat_id": 1, "messages": [MESSAGE_EXAMPLE], "next_after": 7},
            ]
        },
    )

    chat_id: int
    messages: list[MessageResponse] = Field(description="One page, oldest first.")
    next_before: Cursor = Field(
        default=None,
        description="Opaque cursor of the next older page (`?before=`); absent at the start.",
    )
    next_after: SeqCursor = Field(
        default=None,
        description=(
            "Only when paging forward (`?after=`): the seq to pass as `after` for the next "
            "page, present while more messages follow; absent at the chat's end, where a "
            "client continues from its last message's `seq`."
        ),
    )


class ErrorResponse(BaseModel):
    detail: str


def no_default(schema: JsonDict) -> None:
    schema.pop("default", None)


# The 422's body, under the names FastAPI's document gives it (api/openapi.py puts these in
# place of FastAPI's own, which has `detail` optional and `ctx` a closed object).
class ValidationError(BaseModel):
    """One reason a request was refused."""

    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field's name."
    )
    msg: str = Field(description="Why, for a person to read.")
    type: str = Field(description="Why, for a program: `missing`, `int_parsing`, ...")
    ctx: Annotated[
        dict[str, Any] | None,
        # An open object when present, never null: absent when the error has no context.
        WithJsonSchema(
            {
                "type": "object",
                "additionalProperties": True,
                "description": 'The rule that failed, when it has values: `{"le": 100}`.',
            }
        ),
        # No `"default": null` beside it either: an object's default cannot be null, and
        # generators make a field with a default one that is always there.
        Field(exclude_if=lambda value: value is None, json_schema_extra=no_default),
    ] = None


class HTTPValidationError(BaseModel):
    """Every reason a request was refused (422)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "type": "less_than_equal",
                            "loc": ["query", "limit"],
                            "msg": "Input should be less than or equal to 100",
                            "ctx": {"le": 100},
                        }
                    ]
                }
            ]
        }
    )

    detail: list[ValidationError]


# The document's components: responses and headers that many operations share, each
# declared once here and named by a `$ref` where it applies (api/openapi.py puts them in).
SCHEMAS = "#/components/schemas/"


def error_response(description: str, example: str, **extra: Any) -> dict[str, Any]:
    """An error answered as `{"detail": "..."}`."""
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": f"{SCHEMAS}{ErrorResponse.__name__}"},
                "example": {"detail": example},
            }
        },
        **extra,
    }


REPLAYED_HEADER = "Idempotent-Replayed"
RETRY_AFTER_HEADER = "Retry-After"

HEADERS: dict[str, dict[str, Any]] = {
    "Location": {
        "description": "Where the new resource is, relative to this server: `GET` it.",
        "required": True,
        "schema": {"type": "string", "format": "uri-reference"},
        "example": "/chats/1",
    },
    REPLAYED_HEADER: {
        "description": (
            "`true` when this is the response of an earlier request with the same "
            "`Idempotency-Key`, sent again: nothing new was created, and what it names may "
            "have been deleted since. Absent otherwise."
        ),
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
        "example": "true",
    },
    CONSISTENCY_HEADER: {
        "description": (
            "The database's position after this write, opaque. Send it back as the "
            "`Consistency-Token` header of a read and that read shows this write, even when "
            "reads are served by replicas. Present when reads are served by replicas "
            "(READ_DATABASE_URL); absent otherwise, where every read shows the write."
        ),
        "required": False,
        "schema": {"type": "string", "pattern": CONSISTENCY_PATTERN},
        "example": "0/3000148",
    },
    RETRY_AFTER_HEADER: {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
        "example": 1,
    },
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with: `Bearer`.",
        "required": True,
        "schema": {"type": "string"},
        "example": "Bearer",
    },
}


def header_ref(name: str) -> dict[str, Any]:
    assert name in HEADERS, name
    return {"$ref": f"#/components/headers/{name}"}


def headers(*names: str) -> dict[str, Any]:
    """A response's `headers`, each a reference to its component."""
    return {name: header_ref(name) for name in names}


RESPONSES: dict[str, dict[str, Any]] = {
    "Unauthorized": error_response(
        "No credential, or one that is malformed, expired, forged or revoked (AUTH_MODE="
        "required). The response carries `WWW-Authenticate: Bearer`.",
        "not authenticated: send Authorization: Bearer <a user token or an API key>",
        headers=headers("WWW-Authenticate"),
    ),
    "Forbidden": error_response(
        "The caller is a member of the chat, but only its owners may do this.",
        "only an owner of chat 1 may delete it",
    ),
    "ChatNotFound": error_response("The chat does not exist.", "chat 42 not found"),
    "MessageNotFound": error_response(
        "The chat does not exist, or has no message with that id.",
        "message 7 not found in chat 1",
    ),
    "MemberNotFound": error_response(
        "The chat does not exist (to this caller), or the user is not a member of it.",
        "chat 1 not found",
    ),
    "ResumePointAhead": error_response(
        "`after` is beyond the chat's last seq: a resume point from another chat, or made "
        "up. Nothing is skipped silently; start again from 0, or from a seq the chat has.",
        "chat 1 has no message with seq 9: its last seq is 3",
    ),
    "LastOwner": error_response(
        "The chat's last owner cannot leave nor become a plain member: make another owner first.",
        "chat 1 would have no owner left: make another owner first",
    ),
    "TooLarge": error_response(
        "The request body is larger than the configured maximum.",
        "request body larger than 65536 bytes",
    ),
    "Unavailable": error_response(
        "The database is unreachable or overloaded; retry after the given delay.",
        "database unavailable",
        headers=headers(RETRY_AFTER_HEADER),
    ),
}

Responses = dict[int | str, dict[str, Any]]


def response_ref(name: str) -> dict[str, Any]:
    assert name in RESPONSES, name
    return {"$ref": f"#/components/responses/{name}"}


UNAUTHORIZED: Responses = {401: response_ref("Unauthorized")}
FORBIDDEN: Responses = {403: response_ref("Forbidden")}
NOT_FOUND: Responses = {404: response_ref("ChatNotFound")}
MESSAGE_NOT_FOUND: Responses = {404: response_ref("MessageNotFound")}
MEMBER_NOT_FOUND: Responses = {404: response_ref("MemberNotFound")}
CONFLICT: Responses = {409: response_ref("ResumePointAhead")}
LAST_OWNER: Responses = {409: response_ref("LastOwner")}
# Not declared by a GET: it takes no body, so a client of the document sends it none.
TOO_LARGE: Responses = {413: response_ref("TooLarge")}
UNAVAILABLE: Responses = {503: response_ref("Unavailable")}

# The headers of a 201: where the new resource is, whether this is a replay, and the token a
# read brings back to see it.
CREATED_HEADERS = headers("Location", REPLAYED_HEADER, CONSISTENCY_HEADER)
# The header of every other successful write.
WRITE_HEADERS = headers(CONSISTENCY_HEADER)


MEMBER_EXAMPLE: JsonDict = {"user_id": "ann", "role": "owner", "added_at": EXAMPLE_TIME}


class MemberResponse(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [MEMBER_EXAMPLE]}
    )

    user_id: str
    role: Role = Field(description="`owner`s also manage members and may delete the chat.")
    added_at: datetime = Field(description="When the user became a member.")


class MembersResponse(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [{"members": [MEMBER_EXAMPLE]}]}
    )

    members: list[MemberResponse] = Field(description="In the order they joined.")


class PutMemberRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "member"}]})

    role: Role


class StreamTicketResponse(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "ticket": "k3P0cJ0mJfQ2m6C9zv0kY0w1Yt3oQm2d8x7b3s1Zq4E",
                    "expires_at": EXAMPLE_TIME,
                }
            ]
        },
    )

    ticket: str = Field(
        description="Opens one stream of this chat, for this caller: "
        "`GET /chats/{chat_id}/events?ticket=...`."
    )
    expires_at: datetime = Field(description="Unused by then, the ticket is no good.")


# The data of the event stream's events other than `message.posted` (whose data is a
# MessageResponse): what api/events.py sends, and what the document declares.
class ChatDeletedData(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"chat_id": 1}]})

    chat_id: int


class MemberChangeData(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"chat_id": 1, "user_id": "bob", "role": "member"}]}
    )

    chat_id: int
    user_id: str
    role: Role | None = Field(description="The member's role now; null once removed.")
