"""How requests are routed: both slash spellings, HEAD with GET, JSON bodies held to UTF-8
and to standard JSON."""

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from api import direct_params, strict_json

# Set on each route added beside a documented one (HEAD): the documented route's template, so
# that the access log names an operation one way however it was reached.
DOCUMENTED_PATH = "chatapi_documented_path"


def documented_path(route: BaseRoute) -> str | None:
    """The template a route is documented under (`/chats/{chat_id}`): its own, or for a route
    added beside a documented one, that one's."""
    path = getattr(route, DOCUMENTED_PATH, None) or getattr(route, "path_format", None)
    return path if isinstance(path, str) else None


def either_spelling(route: BaseRoute) -> None:
    """Makes `route` match its path with and without the trailing slash, no redirect.

    One route for both, not a route per spelling: Starlette tries each route in turn until
    one matches, ~1.6 µs a route (bench/layers.py), and every route was there twice. The
    spelling given stays the documented one (OpenAPI, url_path_for); only matching changes.
    """
    assert isinstance(route, Route), route
    pattern = route.path_regex.pattern  # compiled by Starlette: "^/chats/(?P<chat_id>[^/]+)$"
    assert pattern.endswith("$"), pattern
    route.path_regex = re.compile(pattern[:-1].removesuffix("/") + "/?$")


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # RFC 8259 requires UTF-8 between systems; json.loads(bytes) would also guess
            # UTF-16 and UTF-32. A UnicodeDecodeError here becomes a 422 in api.errors; a
            # JSONDecodeError (NaN too) one in FastAPI.
            self._json = strict_json.loads((await self.body()).decode("utf-8"))
        return self._json


class Utf8JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        plan = direct_params.plan_of(self.dependant)
        if plan is not None:
            handler = direct_params.direct(plan, handler)
        if self.body_field is None:  # nothing to decode: no second Request object per call
            return handler

        async def utf8_json_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return utf8_json_handler


def stands_in_for(route: BaseRoute, documented: Route) -> None:
    setattr(route, DOCUMENTED_PATH, documented.path_format)


def add_head(router: APIRouter, path: str, documented: APIRoute, **kwargs: Any) -> None:
    """HEAD beside `documented`'s GET, as Starlette's own routes serve it; FastAPI's do not,
    and OpenAPI would list HEAD as an operation of its own: a hidden route."""
    hidden = {**kwargs, "methods": ["HEAD"], "include_in_schema": False}
    # APIRouter's own add_api_route: SlashAgnosticRouter's would look for a GET to add to.
    APIRouter.add_api_route(router, path, documented.endpoint, **hidden)
    either_spelling(router.routes[-1])
    stands_in_for(router.routes[-1], documented)


def serves_head_only(route: BaseRoute) -> bool:
    return isinstance(route, Route) and route.methods == {"HEAD"}


class SlashAgnosticRouter(APIRouter):
    """Serves each path both with and without its trailing slash, with no redirect, and HEAD
    wherever it serves GET.

    The spelling and methods given are the ones documented; the routes added beside them are
    hidden from OpenAPI.
    """

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        documented = self.routes[-1]
        assert isinstance(documented, APIRoute)
        either_spelling(documented)
        if "GET" in (documented.methods or ()):
            # `path`, not `documented.path`: the router adds its prefix to both.
            add_head(self, path, documented, **kwargs)
        # HEAD routes last (the sort is stable): a request is tried against each route before
        # the one that serves it, and a HEAD route never serves another method.
        self.routes.sort(key=serves_head_only)


def serve_like_the_api(router: APIRouter) -> None:
    """Gives the GET routes already on `router` both spellings and HEAD, as SlashAgnosticRouter
    does: for the pages FastAPI and FastAPIOffline add themselves (`/openapi.json`, `/docs`,
    `/docs/oauth2-redirect`, `/redoc`), whose other spelling would be a 307 redirect."""
    for route in list(router.routes):
        if not isinstance(route, Route) or "GET" not in (route.methods or ()):
            continue  # the docs' static files
        either_spelling(route)
        if isinstance(route, APIRoute):
            add_head(router, route.path, route)
        # else /openapi.json, a Starlette route, which serves HEAD with GET already
