"""Cross-origin requests, for browser front-ends served from the CORS_ORIGINS origins.

Without CORS_ORIGINS the app adds no CORS middleware and sends no CORS headers, so a
browser keeps pages of other origins from calling it.
"""

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE"]  # PUT: a chat's members
# What a page may send beyond the CORS-safelisted headers (Starlette adds those itself;
# Content-Type counts as one only for form types, not application/json).
REQUEST_HEADERS = [
    "Authorization",  # a Bearer token (AUTH_MODE=required); not a cookie: no credentials mode
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
    "Consistency-Token",
]
# What a page's script may read of a response, beyond the CORS-safelisted headers.
RESPONSE_HEADERS = [
    "Location",
    "X-Request-ID",
    "Idempotent-Replayed",
    "Retry-After",
    "Consistency-Token",
    "WWW-Authenticate",
]


class Cors(CORSMiddleware):
    """Starlette's CORS, whose refused preflight is an error like any other of the API:
    `{"detail": ...}` JSON naming what was refused, not `text/plain`."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        # Starlette decided; its refusal carries the allow headers all the same (the origin's
        # too, when only a method or a header was refused): none go on, only Vary does.
        refused = "; ".join(self.refused(request_headers)) or "not allowed"
        return JSONResponse(
            {"detail": f"CORS preflight refused: {refused}"},
            status_code=answer.status_code,
            headers={"Vary": answer.headers["vary"]},
        )

    def refused(self, request_headers: Headers) -> list[str]:
        """What of the preflight the policy does not allow, named, by the checks Starlette
        makes."""
        origin = request_headers["origin"]
        method = request_headers["access-control-request-method"]
        headers = request_headers.get("access-control-request-headers")
        refused: list[str] = []
        if not self.is_allowed_origin(origin):
            refused.append(f"origin {origin} is not allowed")
        if method not in self.allow_methods:
            refused.append(f"method {method} is not allowed")
        if headers is not None and not self.allow_all_headers:
            refused += [
                f'header "{name.strip()}" is not allowed'
                for name in headers.split(",")
                if name.strip().lower() not in self.allow_headers
            ]
        private_network = "access-control-request-private-network" in request_headers
        if private_network and not self.allow_private_network:
            refused.append("private network access is not allowed")
        return refused


def cors(app: ASGIApp, origins: tuple[str, ...]) -> Cors:
    """CORS for `origins`, `*` for any; no credentials, since the API uses no cookies."""
    return Cors(
        app,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        expose_headers=RESPONSE_HEADERS,
    )
