"""Who is asking, as FastAPI learns it: `Authorization: Bearer <credential>`, read by
fastapi.security's HTTPBearer (which gives /docs its Authorize button), turned into the
Principal that every command and query is given.

AUTH_MODE=none: every request acts as the local caller, a service, whatever it sends.
AUTH_MODE=required: a user token (JWT) is checked on the event loop, with no database; an
API key on the primary, in the request's one hop to a handler thread. Credentials are read
from the header only, never from the query string, and never logged.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.handling import container, handle
from domain.errors import Unauthenticated
from domain.principals import LOCAL, Principal
from infrastructure.api_keys import is_api_key

SCHEME: dict[str, Any] = {
    "auto_error": False,  # AUTH_MODE=none asks for nothing; `caller` says what is missing
    "scheme_name": "bearer",
    "bearerFormat": "JWT or API key",
    "description": (
        "A user token (a JWT signed with HS256 by the application that owns the users: "
        "`sub` the user's id, `aud`, `exp`), or a service's API key (`chatapi_sk_...`, made "
        "by `chatapi keys create NAME`). Not needed when the server runs AUTH_MODE=none."
    ),
}
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(**SCHEME))]
MISSING = "not authenticated: send Authorization: Bearer <a user token or an API key>"


def auth_required(request: Request) -> bool:
    return request.app.state.auth_required  # type: ignore[no-any-return]


async def principal_of(request: Request, credential: str) -> Principal:
    """The principal a Bearer credential names, or Unauthenticated."""
    app = container(request)
    if is_api_key(credential):
        return await handle(request, app.api_keys().verify, credential)
    tokens = app.user_tokens()
    if tokens is None:  # AUTH_MODE=required always has a secret (infrastructure/settings.py)
        raise Unauthenticated("user tokens are not accepted by this server")
    return tokens.verify(credential)


async def caller(request: Request, credentials: Credentials) -> Principal:
    if not auth_required(request):
        return LOCAL
    if credentials is None:
        raise Unauthenticated(MISSING)
    return await principal_of(request, credentials.credentials)


class BearerCaller(HTTPBearer):
    """The same scheme, read by HTTPBearer, giving the caller: `Caller` is one dependency,
    not `caller` with the scheme under it. FastAPI solves each dependency anew on every
    request, at ~13 µs apiece (bench/layers.py, docs/performance.md)."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await caller(request, await super().__call__(request))


Caller = Annotated[Principal, Depends(BearerCaller(**SCHEME))]
