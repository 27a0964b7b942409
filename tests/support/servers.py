"""The app served by uvicorn in the test process, over a container of the test's choosing."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from dependency_injector import providers
from fastapi import FastAPI

from api.app import create_app
from infrastructure.container import Container
from infrastructure.settings import Settings

# Far above any duration a test asserts: a request that hangs is measured, or fails its
# test, instead of hanging the suite.
HTTP_TIMEOUT_SECONDS = 30.0


# The app served over each container, for tests that look inside it.
APPS: dict[int, FastAPI] = {}


def app_of(container: Container) -> FastAPI:
    return APPS[id(container)]


class LiveServer:
    def __init__(self, container: Container, port: int = 0) -> None:
        """On `port`, or any free one; a fixed port lets a test restart a server in place."""
        app = create_app(container)
        APPS[id(container)] = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def container_for(url: str, **settings: Any) -> Container:
    """A container of its own over the database at `url`, with `settings` besides.

    Its app runs no background jobs (JOBS=worker) unless `settings` say so: a test runs them
    itself when it wants them run (`container.job_runner().run_until_idle()`), so that what a
    delete leaves for its purge stays put until then."""
    container = Container()
    configured = Settings(database_url=url, **{"jobs": "worker", **settings})
    container.settings.override(providers.Object(configured))
    return container


@contextmanager
def served(container: Container) -> Iterator[str]:
    """The app over `container` on a loopback port; yields its base URL, then shuts both down."""
    server = LiveServer(container)
    base_url = server.start()
    try:
        yield base_url
    finally:
        server.stop()
        container.shutdown_resources()


def new_client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_SECONDS)


@contextmanager
def client_of(container: Container) -> Iterator[httpx.Client]:
    """A client of the app over `container`, served as `served` serves it."""
    with served(container) as base_url, new_client(base_url) as client:
        yield client
