"""The FastAPI application, built around a container."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import chats
from api.body_limit import BodyLimit
from api.errors import install_error_handlers
from infrastructure.container import Container

DESCRIPTION = """
A small chat backend: create chats, post messages, read a chat with its latest messages,
delete a chat with everything in it.

Commands change the write model; queries read read models kept in step in the same
transaction, so a message is readable as soon as its `POST` returns.
"""


def create_app(container: Container | None = None) -> FastAPI:
    """Build the app; with no container, one configured from the environment."""
    container = container or Container()
    settings = container.settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        container.shutdown_resources()  # closes the engines' pooled connections

    app = FastAPI(
        title="chatapi",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.container = container
    app.add_middleware(BodyLimit, max_body_size=settings.max_body_size)
    app.include_router(chats.router)
    install_error_handlers(app, retry_after=settings.retry_after)
    return app
