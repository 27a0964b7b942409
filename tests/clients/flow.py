"""What a user writes with the client that openapi-python-client generates from /openapi.json
(as the package `chatapi_client`): the seeds' flow, typed end to end.

Create a chat, post with an Idempotency-Key twice (the second is a replay), read the last
messages, page the history back and forward, manage a member, get a 422 and a 404 as typed
errors, delete the chat; meanwhile the chat's stream, read with httpx-sse, each event parsed
into the generated event models.

tests/clients/test_generated_client.py generates the package, puts a copy of this module
beside it, runs it there as a user's program (`python flow.py BASE_URL TOKEN`) and
type-checks it with the package (strict mypy: `detail[0]` of a 422 must need no check). The
repository's own mypy run has no generated package to see: hence the ignores on its imports,
which the copy goes without.
"""

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeAlias

import httpx
import httpx_sse
from chatapi_client import AuthenticatedClient  # type: ignore[import-not-found]
from chatapi_client.api.chats import (  # type: ignore[import-not-found]
    create_chat,
    delete_chat,
    get_chat,
    get_history,
    post_message,
)
from chatapi_client.api.members import (  # type: ignore[import-not-found]
    put_member,
    remove_member,
)
from chatapi_client.models import (  # type: ignore[import-not-found]
    ChatDeletedData,
    ChatDeletedEvent,
    ChatDetailResponse,
    ChatResponse,
    CreateChatRequest,
    ErrorResponse,
    HistoryResponse,
    HTTPValidationError,
    MemberAddedEvent,
    MemberChangeData,
    MemberRemovedEvent,
    MemberResponse,
    MemberUpdatedEvent,
    MessagePostedEvent,
    MessageResponse,
    PostMessageRequest,
    PutMemberRequest,
    PutMemberRequestRole,
)
from chatapi_client.types import Unset  # type: ignore[import-not-found]

TEXTS = ["one", "two", "three", "four", "five"]
KEY = "5f0c9a9e-8d4b-4a53-9a43-1c2de0a4c7b1"
READ_SECONDS = 10.0  # the longest wait for the stream's next bytes

ChatEvent: TypeAlias = (
    MessagePostedEvent
    | ChatDeletedEvent
    | MemberAddedEvent
    | MemberUpdatedEvent
    | MemberRemovedEvent
)
# Each event's model, by its `event` field (the document's discriminator).
EVENT_MODELS: dict[str, Callable[[Mapping[str, Any]], ChatEvent]] = {
    "message.posted": MessagePostedEvent.from_dict,
    "chat.deleted": ChatDeletedEvent.from_dict,
    "member.added": MemberAddedEvent.from_dict,
    "member.updated": MemberUpdatedEvent.from_dict,
    "member.removed": MemberRemovedEvent.from_dict,
}


def parsed_event(sse: httpx_sse.ServerSentEvent) -> ChatEvent:
    """An event as httpx-sse reads it, as the generated model of its kind."""
    fields: dict[str, Any] = {"event": sse.event, "data": sse.data}
    if sse.id:  # httpx-sse reports "" before the stream sent any
        fields["id"] = sse.id
    if sse.retry is not None:
        fields["retry"] = sse.retry
    return EVENT_MODELS[sse.event](fields)


@contextmanager
def stream_of(client: AuthenticatedClient, chat_id: int) -> Iterator[Iterator[ChatEvent]]:
    """The chat's events from now on, parsed as they come."""
    http: httpx.Client = client.get_httpx_client()
    path = f"/chats/{chat_id}/events"
    with httpx_sse.connect_sse(http, "GET", path, timeout=READ_SECONDS) as source:
        assert source.response.status_code == 200, source.response.read()
        yield (parsed_event(sse) for sse in source.iter_sse())


def run(base_url: str, token: str) -> None:
    # Any status the document does not declare raises.
    client = AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
    created = create_chat.sync_detailed(client=client, body=CreateChatRequest(title="Plans"))
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, ChatResponse)
    chat_id = created.parsed.id
    with stream_of(client, chat_id) as events:
        posted = post_messages(client, chat_id)
        read_and_page(client, chat_id, posted)
        received = [next(events) for _ in posted]
        manage_a_member(client, chat_id)
        # Before the chat goes: once it has, its stream sends nothing but `chat.deleted`.
        received += [next(events) for _ in range(3)]
        typed_errors(client, chat_id)
        deleted = delete_chat.sync_detailed(chat_id, client=client)
        assert (deleted.status_code, deleted.parsed) == (204, None)
        missing = get_chat.sync_detailed(chat_id, client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, ErrorResponse)
        assert missing.parsed.detail == f"chat {chat_id} not found"
        received += list(events)  # until the stream ends, after chat.deleted
    check_events(received, chat_id, posted)


def post_messages(client: AuthenticatedClient, chat_id: int) -> list[MessageResponse]:
    """The first with a key, twice: the second is the first's answer again."""
    first = post_message.sync_detailed(
        chat_id, client=client, body=PostMessageRequest(text=TEXTS[0]), idempotency_key=KEY
    )
    again = post_message.sync_detailed(
        chat_id, client=client, body=PostMessageRequest(text=TEXTS[0]), idempotency_key=KEY
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert isinstance(first.parsed, MessageResponse)
    assert isinstance(again.parsed, MessageResponse)
    assert again.parsed.to_dict() == first.parsed.to_dict()
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    posted = [first.parsed]
    for text in TEXTS[1:]:
        message = post_message.sync(chat_id, client=client, body=PostMessageRequest(text=text))
        assert isinstance(message, MessageResponse)
        posted.append(message)
    assert [message.seq for message in posted] == [1, 2, 3, 4, 5]
    return posted


def seqs(page: ChatDetailResponse | HistoryResponse) -> list[int]:
    return [message.seq for message in page.messages]


def read_and_page(client: AuthenticatedClient, chat_id: int, posted: list[MessageResponse]) -> None:
    """The last three, then back from them, then forward from the start, two at a time."""
    chat = get_chat.sync(chat_id, client=client, limit=3)
    assert isinstance(chat, ChatDetailResponse)
    assert (seqs(chat), chat.message_count) == ([3, 4, 5], 5)
    assert [message.to_dict() for message in chat.messages] == [m.to_dict() for m in posted[2:]]
    assert isinstance(chat.next_before, str)
    back = get_history.sync(chat_id, client=client, before=chat.next_before, limit=2)
    assert isinstance(back, HistoryResponse)
    assert seqs(back) == [1, 2]
    assert isinstance(back.next_before, Unset)  # the oldest reached
    after: int | Unset = 0
    forward: list[int] = []
    while not isinstance(after, Unset):
        page = get_history.sync(chat_id, client=client, after=after, limit=2)
        assert isinstance(page, HistoryResponse)
        forward += seqs(page)
        after = page.next_after
    assert forward == [1, 2, 3, 4, 5]


def manage_a_member(client: AuthenticatedClient, chat_id: int) -> None:
    """Bob added (201), made an owner (200), removed (204)."""
    for role, status in ((PutMemberRequestRole.MEMBER, 201), (PutMemberRequestRole.OWNER, 200)):
        put = put_member.sync_detailed(chat_id, "bob", client=client, body=PutMemberRequest(role))
        assert put.status_code == status, put.content
        assert isinstance(put.parsed, MemberResponse)
        assert (put.parsed.user_id, put.parsed.role.value) == ("bob", role.value)
    removed = remove_member.sync_detailed(chat_id, "bob", client=client)
    assert removed.status_code == 204


def typed_errors(client: AuthenticatedClient, chat_id: int) -> None:
    """A limit out of range: a 422 whose first error is there to read, with its context."""
    refused = get_chat.sync_detailed(chat_id, client=client, limit=0)
    assert refused.status_code == 422
    assert isinstance(refused.parsed, HTTPValidationError)
    error = refused.parsed.detail[0]
    assert (error.loc, error.type_) == (["query", "limit"], "greater_than_equal")
    assert error.msg
    assert not isinstance(error.ctx, Unset)
    assert error.ctx.additional_properties == {"ge": 1}


def check_events(received: list[ChatEvent], chat_id: int, posted: list[MessageResponse]) -> None:
    names = [event.event for event in received]
    changes = ["member.added", "member.updated", "member.removed", "chat.deleted"]
    assert names == ["message.posted"] * len(TEXTS) + changes, names
    messages = [event for event in received if isinstance(event, MessagePostedEvent)]
    assert [MessageResponse.from_dict(json.loads(e.data)).to_dict() for e in messages] == [
        message.to_dict() for message in posted
    ]
    assert [event.id for event in messages] == [str(message.seq) for message in posted]
    assert messages[0].retry == 2000  # on the first event, as no event of its own
    members = [
        MemberChangeData.from_dict(json.loads(event.data))
        for event in received
        if isinstance(event, (MemberAddedEvent, MemberUpdatedEvent, MemberRemovedEvent))
    ]
    roles = [None if member.role is None else member.role.value for member in members]
    assert roles == ["member", "owner", None]
    assert {(member.chat_id, member.user_id) for member in members} == {(chat_id, "bob")}
    (deleted,) = [event for event in received if isinstance(event, ChatDeletedEvent)]
    assert ChatDeletedData.from_dict(json.loads(deleted.data)).chat_id == chat_id


if __name__ == "__main__":
    run(base_url=sys.argv[1], token=sys.argv[2])
