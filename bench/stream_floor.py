"""The floor of live delivery: a bare ASGI app (no framework) with N open streaming responses,
one task writing the same pre-encoded SSE bytes to all of them.

    HOST=127.0.0.1 PORT=8002 python -m bench.stream_floor

Served as bench/floor.py serves its app: one uvicorn worker in this process, uvicorn's "auto"
loop and HTTP implementation (uvloop and httptools), no access log. It speaks the service's
HTTP for what the stream scenarios send, so that wrk's POST script, bench/poster.py and
bench/stream_client.py drive it unchanged:

- `GET /chats/{id}/events`: 200 `text/event-stream` (chunked, `cache-control: no-cache`), the
  stream's `send` in its chat's set, `retry: 2000`, then nothing until the client leaves;
- `POST /chats/{id}/messages/`: the chat's next seq; its `message.posted` event encoded once,
  the service's bytes for such a message (event_bytes); that one chunk sent to every stream of
  the chat in one loop, by the request's own task; then 201 with the message as JSON;
- `GET /seqs`: every chat's last seq, as JSON: what the harness counts the posts by.

Server CPU per delivered event against this floor is what a service's delivery path costs
beyond writing the bytes.
"""

import json
import os
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvicorn

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EVENTS = re.compile(r"/chats/(\d+)/events/?")
MESSAGES = re.compile(r"/chats/(\d+)/messages/?")
RETRY = b"retry: 2000\r\n"
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
JSON_HEADERS = [(b"content-type", b"application/json")]


def message_json(message_id: int, chat_id: int, seq: int, text: str, at: datetime) -> bytes:
    """A message as the service answers its POST: MessageResponse's fields, compact JSON."""
    created_at = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    message = {
        "id": message_id,
        "chat_id": chat_id,
        "seq": seq,
        "text": text,
        "created_at": created_at,
        "author": None,
    }
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def event_bytes(seq: int, data: bytes) -> bytes:
    """The service's `message.posted` event for a message whose JSON is `data`."""
    return b"id: %d\r\nevent: message.posted\r\ndata: %s\r\n\r\n" % (seq, data)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


class StreamFloor:
    """The ASGI app: the streams of each chat, and each chat's last seq."""

    def __init__(self) -> None:
        self.streams: dict[int, set[Send]] = {}
        self.seqs: dict[int, int] = {}
        self.messages = 0

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and (found := EVENTS.fullmatch(path)):
            await self.stream(int(found[1]), receive, send)
        elif method == "POST" and (found := MESSAGES.fullmatch(path)):
            await self.post(int(found[1]), receive, send)
        elif method == "GET" and path == "/seqs":
            await _answer(send, 200, json.dumps(self.seqs).encode())
        else:
            await _answer(send, 404, b'{"detail":"Not Found"}')

    async def stream(self, chat_id: int, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        streams = self.streams.setdefault(chat_id, set())
        streams.add(send)
        try:
            await send({"type": "http.response.body", "body": RETRY, "more_body": True})
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            streams.discard(send)

    async def post(self, chat_id: int, receive: Receive, send: Send) -> None:
        text = json.loads(await _body(receive))["text"]
        seq = self.seqs[chat_id] = self.seqs.get(chat_id, 0) + 1
        self.messages += 1
        data = message_json(self.messages, chat_id, seq, text, datetime.now(UTC))
        chunk = {"type": "http.response.body", "body": event_bytes(seq, data), "more_body": True}
        for stream in tuple(self.streams.get(chat_id, ())):  # one may leave during a send
            await stream(chunk)
        await _answer(send, 201, data)


def main() -> None:
    uvicorn.run(
        StreamFloor(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8002")),
        loop="auto",  # uvicorn's default, as in `chatapi serve`
        http="auto",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
