"""`chatapi serve`: uvicorn on $HOST:$PORT with $WORKERS processes, its logging, and a word at
start-up on the schema."""

import ipaddress
import logging
import logging.config
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from cli import log_queue
from cli.errors import DATABASE_ERRORS, UnsupportedConfiguration, first_line
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.database import is_sqlite
from infrastructure.schema import NOT_MIGRATED

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("chatapi")

# After SIGTERM and uvicorn's shutdown, how long the process waits for its threads to end.
EXIT_WAIT_SECONDS = 3.0

# uvicorn's own lines as usual on stderr; the request lines (api.request_log) are JSON
# already, so they go to stdout as they are, in place of uvicorn's access log, written by a
# thread of their own (cli/log_queue.py) rather than by the event loop. On stderr, a warning
# repeated (an outage) is written once per 10 s with a count of those held back.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
        "plain": {"format": "%(message)s"},
    },
    "filters": {
        "repeats": {"()": "cli.log_filters.RepeatLimit"},
        "closed_connections": {"()": "cli.log_filters.ClosedConnections"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": "default",
            "filters": ["repeats"],
        },
        "requests": {
            "()": "cli.log_queue.QueuedStreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"filters": ["closed_connections"]},
        "chatapi": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "chatapi.requests": {"handlers": ["requests"], "level": "INFO", "propagate": False},
    },
}


def serve(container: Container) -> None:
    import uvicorn  # here, so that the other commands start without it

    settings = container.settings()
    if settings.auth_mode == "none" and not is_loopback(settings.host):
        if not settings.allow_unauthenticated:
            raise UnsupportedConfiguration(
                f"invalid configuration: AUTH_MODE=none lets anyone who reaches {settings.host} "
                "read and delete every chat: serve on a loopback HOST (127.0.0.1), set "
                "AUTH_MODE=required with AUTH_JWT_SECRET, or ALLOW_UNAUTHENTICATED=true on purpose"
            )
        log.warning("AUTH_MODE=none on %s: anyone who reaches it may do everything", settings.host)
    if settings.workers > 1 and is_sqlite(settings.database_url):
        # A message posted through one process would reach the streams of another only by
        # their once-a-second polling; PostgreSQL carries hints between processes.
        raise UnsupportedConfiguration(
            "invalid configuration: WORKERS: more than 1 worker process needs PostgreSQL "
            "(DATABASE_URL is SQLite)"
        )
    logging.config.dictConfig(LOG_CONFIG)
    _warn_unless_migrated(container)
    # uvicorn shuts down on SIGTERM, then raises it again for the handler that was there
    # before: by default that ends the process "killed by SIGTERM" after a clean stop (with
    # WORKERS > 1 the supervisor exits 0 by itself). This one exits 0, both times.
    signal.signal(signal.SIGTERM, _exit_stopped)
    # The app by its import string: each worker process builds its own (uvicorn requires it
    # for workers > 1), with a container and a hint channel of its own.
    uvicorn.run(
        "cli.serve:create_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=LOG_CONFIG,
        # Exposed directly (no proxy in front), a process still holds only so many
        # connections and requests: beyond, 503. A request body that never ends does not
        # hold up a shutdown for longer than the grace period.
        limit_concurrency=settings.limit_concurrency,
        timeout_graceful_shutdown=settings.graceful_shutdown_timeout,
        # The client's address and scheme from X-Forwarded-For/-Proto, believed only when
        # the connection comes from the proxy (deploy/nginx.conf sets them).
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # No `server: uvicorn` on every answer: what a scanner would look up first.
        server_header=False,
    )


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach a server bound to `host`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or 0.0.0.0-like wildcards are not addresses of loopback


def create_app() -> "FastAPI":
    """api.app's app, whose request lines still queued are written out once it has shut down.

    uvicorn shuts the app down after the last request, then raises the SIGTERM it caught
    again: a worker process (WORKERS > 1) has no handler for it and is killed with no exit
    handlers run, logging's included.
    """
    from api.app import create_app as create_api_app

    lean_log_records()
    app = create_api_app()
    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def then_write_out_logs(app: "FastAPI") -> AsyncIterator[Any]:
        try:
            async with lifespan(app) as state:
                yield state
        finally:
            log_queue.stop_writers()

    app.router.lifespan_context = then_write_out_logs
    return app


def lean_log_records() -> None:
    """Log records without what no handler of LOG_CONFIG writes: the file and line that
    logged (found by walking the stack), the names of the thread and the process. The
    switches Python's logging HOWTO names ("Optimization"); they take about a third off each
    request line (docs/performance.md). Set in each serving process, from create_app below
    (uvicorn's worker processes are spawned): the other commands keep whole records."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False  # new in 3.12: each record asks for the current task


def _exit_stopped(signum: int, frame: FrameType | None) -> None:
    # uvicorn has shut the app down by now. A handler thread still blocked on a database that
    # does not answer (frozen, or cut off) cannot be interrupted, and the interpreter waits
    # for every such thread before it exits: past a few seconds, exit without them.
    watchdog = threading.Timer(EXIT_WAIT_SECONDS, os._exit, args=(0,))
    watchdog.daemon = True
    watchdog.start()
    raise SystemExit(0)


def _warn_unless_migrated(container: Container) -> None:
    """Say at start-up what /health/ready will say: the server does not migrate by itself.

    Migrating stays a one-shot step (`chatapi migrate`, Compose's `migrate` service), so that
    replicas starting together never race to apply a migration, and the server needs no
    rights to change the schema. Until it is done the server serves anyway, as it does while
    the database is unreachable: every request that needs the schema gets 503 with
    Retry-After and /health/ready keeps it out of rotation; once migrated, it is ready with
    no restart, whatever order things were started in.
    """
    try:
        at_head = migrations.is_at_head(container.read_engine())
    except DATABASE_ERRORS as exc:
        log.warning("database unavailable, serving 503 until it answers: %s", first_line(exc))
        return
    finally:
        container.shutdown_resources()  # the server opens its own engines
    if not at_head:
        log.warning("%s; serving 503 until then", NOT_MIGRATED)
