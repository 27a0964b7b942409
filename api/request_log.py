"""One structured (JSON) log line per request, tied together by a request id.

The id comes from the client's `X-Request-ID` when it is a sane token, so a request can be
followed from a proxy or client into these logs; otherwise one is generated. Either way it
is returned in the response's `X-Request-ID`.
"""

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("chatapi.requests")

HEADER = "x-request-id"
# Anything else (too long, spaces, control characters) could forge or break log lines.
ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(scope: Scope) -> str:
    given = Headers(scope=scope).get(HEADER, "")
    return given if ACCEPTED_ID.fullmatch(given) else uuid.uuid4().hex


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                json.dumps(
                    {
                        "request_id": rid,
                        "method": scope["method"],
                        "path": path_template(scope),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    }
                )
            )


def path_template(scope: Scope) -> str:
    """The matched route's path (`/chats/{chat_id}`), so log lines group by operation."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else scope["path"]
