"""Cross-origin requests, for browser front-ends served from the CORS_ORIGINS origins.

Without CORS_ORIGINS the app adds no CORS middleware and sends no CORS headers, so a
browser keeps pages of other origins from calling it.
"""

from starlette.middleware.cors import CORSMiddleware
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


def cors(app: ASGIApp, origins: tuple[str, ...]) -> CORSMiddleware:
    """CORS for `origins`, `*` for any; no credentials, since the API uses no cookies."""
    return CORSMiddleware(
        app,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        expose_headers=RESPONSE_HEADERS,
    )
