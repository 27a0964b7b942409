"""How the chat endpoints are routed: both slash spellings, and JSON bodies held to UTF-8."""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute


class Utf8JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # RFC 8259 requires UTF-8 between systems; json.loads(bytes) would also guess
            # UTF-16 and UTF-32. A UnicodeDecodeError here becomes a 422 in api.errors.
            self._json = json.loads((await self.body()).decode("utf-8"))
        return self._json


class Utf8JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # nothing to decode: no second Request object per call

        async def utf8_json_handler(request: Request) -> Response:
            return await handler(Utf8JsonRequest(request.scope, request.receive))

        return utf8_json_handler


class SlashAgnosticRouter(APIRouter):
    """Serves each path both with and without its trailing slash, with no redirect.

    The spelling given in the route is the one documented; its twin is hidden from OpenAPI.
    """

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        twin = path.removesuffix("/") if path.endswith("/") else f"{path}/"
        super().add_api_route(twin, endpoint, **{**kwargs, "include_in_schema": False})
