"""Tells the event streams when uvicorn begins to shut down.

uvicorn waits for open responses to end before it runs the app's lifespan shutdown, and a
stream never ends by itself: so the app must learn of the shutdown otherwise. uvicorn handles
SIGTERM and SIGINT with its Server's `handle_exit`, which sets `should_exit`; the server is
found through that handler, and one task per process checks the flag (which a programmatic
stop sets too). Under another server, or uvicorn in a thread (no signal handlers), nothing
is found and streams end with their clients or the server's own timeout.
"""

import asyncio
import signal
from collections.abc import Callable
from typing import Any

CHECK_INTERVAL = 0.2  # seconds: how late a stream may learn of a shutdown


def uvicorn_server() -> Any | None:
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return server if hasattr(server, "should_exit") else None


async def on_shutdown(server: Any, then: Callable[[], None]) -> None:
    """Calls `then` once the server starts to shut down."""
    while not server.should_exit:
        await asyncio.sleep(CHECK_INTERVAL)
    then()
