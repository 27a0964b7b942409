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
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routing import documented_path

log = logging.getLogger("chatapi.requests")

HEADER = "x-request-id"
# Anything else (too long, spaces, control characters) could forge or break log lines.
ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(scope: Scope) -> str:
    given = Headers(scope=scope).get(HEADER, "")
    return given if ACCEPTED_ID.fullmatch(given) else uuid.uuid4().hex


class RequestLog:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        """`routes`: every route the app serves, to name a request refused before routing."""
        self.app = app
        # An included router is listed by its own routes: it cannot say which one matched.
        self.routes = [route for route in routes if isinstance(route, Route | Mount)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        root_path = scope.get("root_path", "")  # before a Mount extends it
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not answered:
                # Starlette's error middleware, outside this one, would answer a bug with a
                # 500 that has no request id; the same 500 with the id ties it to this log line.
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send_with_id)
            raise
        finally:
            log.info(
                json.dumps(
                    {
                        "request_id": rid,
                        "method": scope["method"],
                        "path": path_template(scope, root_path, self.routes),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    }
                )
            )


def path_template(scope: Scope, root_path: str, routes: Sequence[BaseRoute]) -> str | None:
    """The documented template of the route (`/chats/{chat_id}`), so log lines group by
    operation, whichever spelling of the path was sent.

    A request refused before routing (a 413) has no route in its scope, nor does one for the
    docs' static files: theirs is found here, from the path as it arrived (`root_path`: the
    scope's before routing). A path that no route serves gives None, never the path itself,
    which a client could make any string of any length.
    """
    route = scope.get("route")
    if route is None:
        arrived = {**scope, "root_path": root_path}
        route = next((r for r in routes if r.matches(arrived)[0] is not Match.NONE), None)
    return None if route is None else documented_path(route)
