"""Headers every answer carries, whoever serves it (the app directly, or behind a proxy that
adds its own): no MIME sniffing of a JSON body into something a browser would run, no framing
of /docs into another site's page (clickjacking), no URL of ours in a Referer elsewhere.

A plain ASGI middleware: it appends pre-encoded headers to each response's start message,
which costs a list concatenation, not a Starlette response wrapper."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
