"""Refuses a request that sends twice a header the API reads as one value.

Which of two idempotency keys, consistency tokens, resume points or credentials the client
meant cannot be told, and FastAPI would read the first: keying a write, or resuming a stream,
on a guess. One check before routing, for every operation, as a 422 like a malformed header.
"""

from collections import Counter

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import validation_response
from infrastructure.consistency import HEADER as CONSISTENCY_TOKEN

# The headers a client sends us, each read as one value; as written in messages.
SINGLE_VALUED = ("Idempotency-Key", CONSISTENCY_TOKEN, "Last-Event-ID", "Authorization")
_NAMED = {name.lower().encode("latin-1"): name for name in SINGLE_VALUED}


def repeated(headers: list[tuple[bytes, bytes]]) -> dict[str, int]:
    """The single-valued headers among `headers` (an ASGI scope's, names lower-cased) that
    occur more than once, with how many times."""
    named = [_NAMED[name] for name, _ in headers if name in _NAMED]
    if len(named) < 2:
        return {}  # the usual request: nothing to count
    return {name: count for name, count in Counter(named).items() if count > 1}


class SingleHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = repeated(scope["headers"]) if scope["type"] == "http" else {}
        if not found:
            await self.app(scope, receive, send)
            return
        errors = [
            {
                "type": "header_repeated",
                "loc": ["header", name.lower()],  # as FastAPI names a header parameter
                "msg": f"{name} was sent {count} times: send it once",
            }
            for name, count in found.items()
        ]
        await validation_response(errors)(scope, receive, send)
