"""One structured (JSON) log line per request, tied together by a request id.

The request id comes from the client's `X-Request-ID` when it is a sane token, so a request
can be followed from a proxy or client into these logs; otherwise it is the server's own.
Either way it is returned in the response's `X-Request-ID`. A client may send any id,
another request's too: each line also carries `server_request_id`, made by the server for
that request alone, which no client chooses.

A bug is answered here with a JSON 500 that carries the id, and its traceback is logged
once, with the id. A client that left before its answer could be sent is no bug: its line
says 499 (nginx's "client closed request"), with no traceback.
"""

import logging
import re
import secrets
import time
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii

from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import internal_error
from api.routing import documented_path

log = logging.getLogger("chatapi.requests")
server_log = logging.getLogger("chatapi")

HEADER = b"x-request-id"
# Anything else (too long, spaces, control characters) could forge or break log lines.
ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
CLIENT_CLOSED_REQUEST = 499


def request_id(scope: Scope, server_request_id: str) -> str:
    """The client's `X-Request-ID` when it is a sane token, else `server_request_id`."""
    for name, value in scope["headers"]:  # ASGI servers give header names in lower case
        if name == HEADER:
            given = value.decode("latin-1")
            return given if ACCEPTED_ID.fullmatch(given) else server_request_id
    return server_request_id


def request_line(
    request_id: str,
    server_request_id: str,
    method: str,
    path: str | None,
    status: int,
    duration_ms: float,
) -> str:
    """The request's JSON line, byte for byte as json.dumps writes it (tests/api/
    test_request_log.py) at a fifth of its cost (docs/performance.md): the strings escaped by
    json.dumps's own function, the number written as its repr, as json.dumps does."""
    return (
        f'{{"request_id": {encode_basestring_ascii(request_id)}, '
        f'"server_request_id": {encode_basestring_ascii(server_request_id)}, '
        f'"method": {encode_basestring_ascii(method)}, '
        f'"path": {"null" if path is None else encode_basestring_ascii(path)}, '
        f'"status": {status:d}, "duration_ms": {duration_ms!r}}}'
    )


def is_closed_connection(exc: BaseException) -> bool:
    """Whether `exc`, raised by the server's `send`, says the client's connection is closed.

    The ASGI specification asks for an OSError. uvicorn on uvloop raises uvloop's
    RuntimeError instead when it answers a pipelined request after the client closed the
    connection (it marks only the newest request of the connection as disconnected).
    """
    return isinstance(exc, OSError) or (
        isinstance(exc, RuntimeError) and str(exc).endswith("the handler is closed")
    )


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
        # 128 random bits, as uuid4's 122, at a quarter of uuid4's cost (docs/performance.md)
        server_rid = secrets.token_hex(16)
        rid = request_id(scope, server_rid)
        root_path = scope.get("root_path", "")  # before a Mount extends it
        started = time.perf_counter()
        # The app returns without answering only when the client has gone (in the middle of
        # sending its body, say).
        status = CLIENT_CLOSED_REQUEST
        answered = False
        gone = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered, gone
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            try:
                await send(message)
            except Exception as exc:
                gone = is_closed_connection(exc)
                raise

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            pass  # it left while its body was read: there is nobody to answer
        except Exception as exc:
            if gone:
                raise  # for the server to close the connection (cli/log_filters.py words it)
            # Handled here, not raised further: Starlette's error middleware, outside this one,
            # would answer without the id, and the server would log the traceback again.
            server_log.error("unexpected error, request_id %s", rid, exc_info=exc)
            if not answered:
                await internal_error(rid)(scope, receive, send_with_id)
        finally:
            log.info(
                request_line(
                    rid,
                    server_rid,
                    scope["method"],
                    path_template(scope, root_path, self.routes),
                    CLIENT_CLOSED_REQUEST if gone else status,
                    round((time.perf_counter() - started) * 1000, 3),
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
