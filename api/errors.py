"""Maps what handlers raise to HTTP statuses; nothing else happens here."""

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from domain.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    LastOwner,
    NotFound,
    ResumePointAhead,
    Unauthenticated,
)
from infrastructure.failures import is_unavailable
from infrastructure.schema import NOT_MIGRATED, SchemaNotMigrated, is_missing_schema_error

log = logging.getLogger("chatapi")

INTERNAL_ERROR = "internal server error"


def internal_error(request_id: str | None) -> JSONResponse:
    """A bug's answer: nothing of it but the id that finds its traceback in the logs."""
    return JSONResponse({"detail": INTERNAL_ERROR, "request_id": request_id}, status_code=500)


def field_location(request: Request, field: str) -> list[str]:
    """Where a domain field arrived in this request, as FastAPI's 422 names it: the matched
    endpoint's path, query or header parameter of that name, else a field of the body."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        endpoint = route.dependant
        for location, parameters in (
            ("path", endpoint.path_params),
            ("query", endpoint.query_params),
            ("header", endpoint.header_params),  # named as sent: idempotency-key
        ):
            for parameter in parameters:
                if parameter.name == field:
                    return [location, parameter.alias]
    return ["body", field]


def json_safe(value: Any) -> Any:
    """A `ctx` value as JSON carries it: pydantic's `error` is an exception, and a bound may
    be a float JSON has no number for, or a type json does not know."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


def shown_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One error of a 422 as every 422 shows it: `type`, `loc`, `msg`, and `ctx` where there
    is one. Never pydantic's `input`, which echoed back whatever was sent (a 10 KB text, a
    NaN no strict parser reads), nor its `url`, pydantic's documentation."""
    shown = {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
    if error.get("ctx"):
        shown["ctx"] = {name: json_safe(value) for name, value in error["ctx"].items()}
    return shown


def validation_response(errors: Sequence[Mapping[str, Any]]) -> Response:
    """The 422 of every invalid request, pydantic's, FastAPI's and ours alike."""
    detail = [shown_error(error) for error in errors]
    # ASCII-escaped: a message or location may hold a lone surrogate, which UTF-8 cannot
    # encode. allow_nan=False: nothing but standard JSON, which json_safe ensures.
    body = json.dumps({"detail": detail}, ensure_ascii=True, allow_nan=False)
    return Response(body, status_code=422, media_type="application/json")


def allowed_methods(routes: Sequence[BaseRoute], path: str) -> str:
    """Every method some route serves at this path, for a 405's Allow header."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI, retry_after: int, routes: Sequence[BaseRoute]) -> None:
    async def request_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_response(exc.errors())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI answers 400 when parsing the body fails other than by a JSON syntax
            # error (not UTF-8, nested too deep, an integer too long): malformed JSON all
            # the same, so the same 422 as a syntax error.
            reason = (
                "the body is not valid UTF-8"
                if isinstance(exc.__cause__, UnicodeDecodeError)
                else "the body cannot be parsed"
            )
            error = {"loc": ["body"], "msg": f"JSON decode error: {reason}", "type": "json_invalid"}
            return validation_response([error])
        if exc.status_code == 405:
            # Starlette lists only the methods of the first route matching the path; the
            # same path is served by several routes (GET and POST /chats/, ...).
            allow = allowed_methods(routes, request.url.path)
            exc = HTTPException(405, detail=exc.detail, headers={"Allow": allow})
        return await http_exception_handler(request, exc)

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    async def unauthenticated(request: Request, exc: Exception) -> JSONResponse:
        # RFC 6750: a 401 names the scheme to use. The message never holds the credential.
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    async def forbidden(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    async def invalid_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidInput)
        error = {
            "loc": field_location(request, exc.field),
            "msg": exc.reason,
            "type": "value_error",
        }
        return validation_response([error])

    async def key_reused(request: Request, exc: Exception) -> Response:
        error = {
            "loc": field_location(request, "idempotency_key"),
            "msg": str(exc),
            "type": "idempotency_key_reused",
        }
        return validation_response([error])

    async def schema_not_migrated(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database schema not migrated: %s", str(exc).splitlines()[0])
        # Found by a failing statement, the schema changed under the running service (a
        # database recreated or downgraded): check it again before serving the next requests.
        request.app.state.container.schema_check().forget()
        return JSONResponse(
            {"detail": NOT_MIGRATED},
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # SQLite reports a missing table as an OperationalError, as it does a lost database.
        if isinstance(exc, DBAPIError) and is_missing_schema_error(exc):
            return await schema_not_migrated(request, exc)
        log.warning("database unavailable: %s", str(exc).splitlines()[0])
        return JSONResponse(
            {"detail": "database unavailable"},
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # The database's state (a lost connection, a read-only standby, a shutdown) is a 503;
        # anything else is a bug.
        assert isinstance(exc, DBAPIError)
        if is_missing_schema_error(exc):
            return await schema_not_migrated(request, exc)
        if is_unavailable(exc):
            return await database_unavailable(request, exc)
        raise exc

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's last resort, for a bug that no middleware of ours answered: with the
        # access log off (no request ids then). Starlette raises it again, for the server's
        # log to show its traceback.
        return internal_error(None)

    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(NotFound, not_found)  # a chat, or a message in one
    app.add_exception_handler(ResumePointAhead, conflict)  # `after` past the end
    app.add_exception_handler(LastOwner, conflict)  # a chat left without an owner
    app.add_exception_handler(Unauthenticated, unauthenticated)
    app.add_exception_handler(Forbidden, forbidden)  # a member doing an owner's part
    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_exception_handler(IdempotencyKeyReused, key_reused)
    app.add_exception_handler(SchemaNotMigrated, schema_not_migrated)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(Exception, unexpected)
