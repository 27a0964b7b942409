"""A chat's events as Server-Sent Events bytes: each encoded once, whatever number of streams
it goes to.

Lines end with CRLF. `data` is one line of JSON: pydantic's JSON escapes every line break
inside strings, so no event needs the multi-line `data:` form.
"""

from datetime import UTC, datetime

from api.schemas import ChatDeletedData, MemberChangeData, MessageResponse, message_json
from domain.events import MessagePosted
from queries.dtos import MessageDTO
from queries.get_member_events import MemberEventDTO

MESSAGE_POSTED = "message.posted"
CHAT_DELETED = "chat.deleted"
# A chat's membership changes: data {"chat_id", "user_id", "role"} (role null once removed).
MEMBER_EVENTS = {"added": "member.added", "updated": "member.updated", "removed": "member.removed"}
# How long a browser waits before reconnecting, in milliseconds. Sent first on every stream,
# as a field line that opens the first event's block rather than a block of its own: a block
# without data is no event to EventSource, but clients such as httpx-sse hand it over as one,
# empty. A client applies `retry` as it reads the line, so it holds before the first event.
RETRY_MILLISECONDS = 2000
RETRY = f"retry: {RETRY_MILLISECONDS}\r\n".encode()


def event(name: str, data: str, id: str | None = None) -> bytes:
    fields = f"event: {name}\r\ndata: {data}\r\n\r\n"
    return (fields if id is None else f"id: {id}\r\n{fields}").encode()


def message_posted(message: MessageResponse) -> bytes:
    # byte for byte what the POST answered
    return event(MESSAGE_POSTED, message.model_dump_json(), id=str(message.seq))


def message_read(message: MessageDTO) -> bytes:
    return message_posted(MessageResponse.model_validate(message))


def message_committed(posted: MessagePosted) -> bytes:
    """A message this process committed, as its stream event, without reading it back: the
    same JSON as its 201, made once for both."""
    return event(MESSAGE_POSTED, message_json(posted), id=str(posted.seq))


def chat_deleted(chat_id: int) -> bytes:
    return event(CHAT_DELETED, ChatDeletedData(chat_id=chat_id).model_dump_json())


def member_event(change: MemberEventDTO) -> bytes:
    return member_change(change.kind, change.chat_id, change.user_id, change.role)


def member_removed(chat_id: int, user_id: str) -> bytes:
    return member_change("removed", chat_id, user_id, None)


def member_change(kind: str, chat_id: int, user_id: str, role: str | None) -> bytes:
    data = MemberChangeData.model_validate({"chat_id": chat_id, "user_id": user_id, "role": role})
    return event(MEMBER_EVENTS[kind], data.model_dump_json())


def heartbeat() -> bytes:
    """`: ping - <time>`, a comment line with no blank line after it: it keeps the connection
    busy and ends no block (a blank line would: EventSource ignores an empty block, but
    clients such as httpx-sse hand it over as an event once the stream has sent an `id` or
    a `retry`, which they keep from block to block)."""
    return f": ping - {datetime.now(UTC)}\r\n".encode()
