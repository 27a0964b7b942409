"""The FastAPI application, built around a container."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import chats, events, health, members
from api.admission import Admission, Busy, busy_handler
from api.body_limit import BodyLimit
from api.cors import cors
from api.errors import install_error_handlers
from api.live.chats import LiveChats
from api.live.news import NewsReader
from api.live.shutdown import on_shutdown, uvicorn_server
from api.openapi import install_openapi
from api.request_log import RequestLog
from api.routing import serve_like_the_api
from api.security_headers import SecurityHeaders
from api.single_headers import SingleHeaders
from api.stream_slots import StreamSlots
from infrastructure.container import Container
from infrastructure.job_runner import start_in_thread
from infrastructure.loop_database import LoopDatabase, uses_loop_database

DESCRIPTION = """
A small chat backend: create chats, post messages, read a chat with its latest messages,
follow it live, delete it with everything in it. What a client may rely on:

- **Errors** are JSON: `{"detail": "..."}`, and for a 422 `{"detail": [{"type", "loc", "msg",
  "ctx"?}]}`. A 503 (the database is unreachable, or the server busy) and a 429 carry
  `Retry-After`.
- **Retries**: `POST /chats/` and `POST /chats/{chat_id}/messages/` take an `Idempotency-Key`:
  sent again with the same body, the request gets the first response again
  (`Idempotent-Replayed: true`) and changes nothing; the same key with another body is a 422.
- **Paging**: `GET /chats/{chat_id}/messages/` goes back with the opaque `next_before` cursor
  and forward with `after` (a message's `seq`) and `next_after`, never skipping nor repeating
  a message; `GET /chats/` pages with `next_cursor`.
- **Live**: `GET /chats/{chat_id}/events` is Server-Sent Events, each message's `id` its
  `seq`. A client resumes with `Last-Event-ID` (or `?after=`): what it missed, then live, with
  no gap and no duplicate.
- **Read your writes**: a write's `Consistency-Token` header, sent back with a read, makes
  that read show the write when reads are served by replicas.
- **Who is asking**: with `AUTH_MODE=required`, every operation but `/health/*` needs
  `Authorization: Bearer` with a user's token (a JWT) or a service's API key, or for a
  browser's stream a single-use `ticket`; a missing or bad credential is a 401. With
  `AUTH_MODE=none` (the default) no credential is asked.

Commands change the write model; queries read read models kept in step in the same
transaction, so a message is readable as soon as its `POST` returns.
"""

log = logging.getLogger("chatapi")

# Seconds shutdown waits for the background jobs' step in flight (a batch takes milliseconds);
# a step stuck on a frozen database is left to roll back with the process's connections.
JOBS_STOP_TIMEOUT = 1.0

TAGS = [
    {"name": "chats", "description": "Chats and their messages."},
    {"name": "members", "description": "Who belongs to a chat, and as what."},
    {"name": "health", "description": "Probes for orchestrators and load balancers."},
]


def create_app(container: Container | None = None) -> FastAPI:
    """Build the app; with no container, one configured from the environment."""
    container = container or Container()
    settings = container.settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Fewer threads than anyio's default 40: they only contend for the GIL and for
        # pooled connections beyond this many.
        to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        # Streams wake on this loop; on PostgreSQL it also hears the other processes' hints.
        publisher = container.hint_publisher()
        await publisher.start()
        # Background jobs (a deleted chat's purge, expired keys and tickets) in a thread of
        # this process, unless `chatapi worker` processes run them (JOBS=worker).
        jobs = container.job_runner() if settings.jobs == "in-process" else None
        jobs_thread = None if jobs is None else start_in_thread(jobs)
        live.start(publisher.hints, lambda: publisher.wait_timeout(settings.stream_heartbeat))
        # The hot paths' statements on this loop's own connections, on PostgreSQL without
        # replicas (api/handling.py `read` and `write`).
        if uses_loop_database(settings):
            dialect = container.read_engine().dialect
            app.state.loop_database = LoopDatabase(settings, dialect, publisher)
        # uvicorn waits for open responses before it shuts the app down: streams end first.
        server = uvicorn_server()
        watching = (
            None if server is None else asyncio.create_task(on_shutdown(server, live.finish_all))
        )
        yield
        live.finish_all()
        if watching is not None:
            watching.cancel()
        if jobs is not None and jobs_thread is not None:
            jobs.stop()  # after the step in flight, which commits whole
            await to_thread.run_sync(jobs_thread.join, JOBS_STOP_TIMEOUT)
        if app.state.loop_database is not None:
            await app.state.loop_database.close()
            app.state.loop_database = None
        await publisher.stop()  # stops listening, sends the hints still queued
        container.shutdown_resources()  # closes the engines' pooled connections

    # FastAPIOffline serves /docs and /redoc with their assets from the package, not a CDN.
    app = FastAPIOffline(
        title="chatapi",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        telemetry={
            "tracing": settings.telemetry,
            "metrics": settings.telemetry,
            "logs": settings.telemetry,
        },
    )
    app.state.container = container
    # The reads' parameters solved by api/direct_params.py, FastAPI's handler otherwise; not
    # with telemetry on, whose spans FastAPI's handler opens.
    app.state.direct_params = not settings.telemetry
    app.state.auth_required = settings.auth_mode == "required"  # api/auth.py
    app.state.stream_slots = StreamSlots(settings.max_streams_per_user)
    admission = Admission(
        settings.thread_wait_timeout, settings.request_timeout, settings.chat_writes_in_flight
    )
    app.state.admission = admission
    app.state.loop_database = None  # until the lifespan starts
    # The chats' writers read as the service, on the primary, where the hints come from.
    news = NewsReader(
        admission.run, container.stream_messages_after, container.stream_member_events
    )
    live = LiveChats(news, settings.stream_heartbeat, settings.stream_send_timeout)
    app.state.live = live
    install_openapi(app)  # what the routes cannot declare (api/openapi.py)
    # The docs pages FastAPI and FastAPIOffline added: both spellings and HEAD, as the API's.
    serve_like_the_api(app.router)
    # Each router's routes straight into the app's, before the docs pages: tried first.
    # include_router keeps an included router as a route of its own (FastAPI's
    # _IncludedRouter), which scans its routes twice per request, to match it and again to
    # handle it (~28 µs on every request, bench/layers.py). Nothing is lost: each route has
    # its router's tags, responses and route class already, and no option of include_router
    # is used (the OpenAPI document is the same).
    app.router.routes[:0] = [
        *chats.router.routes,
        *members.router.routes,
        *events.router.routes,
        *health.router.routes,
    ]
    # Every route, for what needs them outside routing: a 405's Allow, a 413's log line.
    routes = list(app.router.routes)
    install_error_handlers(app, retry_after=settings.retry_after, routes=routes)
    app.add_exception_handler(Busy, busy_handler(settings.retry_after))  # a deadline missed
    # The last added runs first: every request is logged, even one refused for its size,
    # and CORS headers go on every answer, a 413 included, so a page can read why.
    app.add_middleware(SingleHeaders)  # inside BodyLimit: a 413 is told before a 422
    app.add_middleware(BodyLimit, max_body_size=settings.max_body_size)
    if settings.cors_origins:
        app.add_middleware(cors, origins=settings.cors_origins)
    app.add_middleware(SecurityHeaders)  # on every answer, a 413 and a CORS refusal too
    if settings.access_log:
        app.add_middleware(RequestLog, routes=routes)
    return app
