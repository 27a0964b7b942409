from collections.abc import Callable
from typing import Any

from fastapi import APIRouter


class SlashAgnosticRouter(APIRouter):
    """Serves each path both with and without its trailing slash, with no redirect.

    The spelling given in the route is the one documented; its twin is hidden from OpenAPI.
    """

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        twin = path.removesuffix("/") if path.endswith("/") else f"{path}/"
        super().add_api_route(twin, endpoint, **{**kwargs, "include_in_schema": False})
