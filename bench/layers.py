"""What each of the service's own layers costs a request, in CPU, one layer taken out at a time.

The app is called in this process as uvicorn calls it (ASGI, no socket), on a real
PostgreSQL, a few requests at once; the process's CPU time per request is what the app
costs (PostgreSQL is another process). Each variant is the service with one layer
removed or bypassed; its saving against the whole app is that layer's cost. Variants run
in turn, several rounds, and the least CPU per request of each is kept: noise only adds.

    python -m bench.layers            # prints a Markdown table (docs/performance.md has one)
"""

import asyncio
import gc
import logging.config
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvloop
from dependency_injector import providers
from fastapi import FastAPI
from starlette.types import Message, Scope

from api.app import create_app
from api.body_limit import BodyLimit
from api.request_log import RequestLog
from api.security_headers import SecurityHeaders
from api.single_headers import SingleHeaders
from bench import floor
from cli.log_queue import stop_writers
from cli.serve import LOG_CONFIG, lean_log_records
from commands.post_message import PostMessage
from devtools.postgres_cluster import find_bindir, started_cluster
from domain.principals import LOCAL
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.loop_database import LoopDatabase
from infrastructure.settings import Settings
from queries.get_chat import GetChat

CHATS = 100
MESSAGES = 30
CONCURRENCY = 8
REQUESTS = int(os.environ.get("LAYERS_REQUESTS", "2000"))
ROUNDS = int(os.environ.get("LAYERS_ROUNDS", "3"))
BODY = b'{"text": "A benchmark message, about as long as a short chat line."}'


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: bytes = b""
    body: bytes = b""


ENDPOINTS = {
    "GET limit=20": Request("GET", "/chats/{chat}", b"limit=20"),
    "POST messages": Request("POST", "/chats/{chat}/messages/", body=BODY),
    "GET /health/live": Request("GET", "/health/live"),
}


def scope_of(request: Request, chat: int) -> Scope:
    path = request.path.format(chat=chat)
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")]
    if request.body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(request.body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": request.query,
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: Any, request: Request, chat: int) -> int:
    """One request through `app`; its status."""
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays: no disconnect
        sent = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope_of(request, chat), receive, send)
    return status


async def cpu_per_request(app: Any, request: Request) -> float:
    """µs of this process's CPU per request, CONCURRENCY at a time."""

    async def one(chat: int) -> None:
        status = await call(app, request, chat)
        if status >= 300:
            raise RuntimeError(f"{request.method} {request.path}: {status}")

    return await cpu_per_call(one)


async def cpu_per_call(one: Callable[[int], Awaitable[Any]]) -> float:
    """µs of this process's CPU per `one(chat)`, CONCURRENCY at a time."""
    chats = iter(range(10**9))

    async def client(count: int) -> None:
        for _ in range(count):
            await one(next(chats) % CHATS + 1)

    await asyncio.gather(*(client(50 // CONCURRENCY) for _ in range(CONCURRENCY)))  # warm
    gc.collect()
    started = time.process_time()
    await asyncio.gather(*(client(REQUESTS // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / (REQUESTS // CONCURRENCY * CONCURRENCY) * 1e6


@asynccontextmanager
async def running(app: FastAPI) -> Any:
    """The app's lifespan, started and stopped as uvicorn does."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    if (await outbox.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the app did not start")
    try:
        yield app
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


Variant = Callable[[FastAPI], None]


def without(middleware: object) -> Variant:
    def change(app: FastAPI) -> None:
        app.user_middleware = [m for m in app.user_middleware if m.cls != middleware]
        app.middleware_stack = None  # rebuilt at the next call

    return change


def without_admission(app: FastAPI) -> None:
    """The deadline around a loop call, and a write's wait for its chat's turn, skipped."""

    async def direct(handler: Callable[[Any], Awaitable[Any]], argument: Any, **_: Any) -> Any:
        return await handler(argument)

    app.state.admission.on_loop = direct


def without_hints(app: FastAPI) -> None:
    """A commit's hints to this process's streams and, through the hint channel's batched
    NOTIFY, to the other processes' (no stream open here): not sent."""
    publisher = app.state.container.hint_publisher()

    def nothing(*_: Any, **__: Any) -> None:
        pass

    publisher.publish = nothing


VARIANTS: dict[str, Variant | None] = {
    "the whole app (ACCESS_LOG=true)": None,
    "without RequestLog (ACCESS_LOG=false)": without(RequestLog),
    "without SecurityHeaders": without(SecurityHeaders),
    "without BodyLimit": without(BodyLimit),
    "without SingleHeaders": without(SingleHeaders),
    "without the admission wrapper": without_admission,
    "without hints (no NOTIFY)": without_hints,
}


def container_for(database_url: str) -> Container:
    container = Container()
    settings = Settings(database_url=database_url, jobs="worker", access_log=True)
    container.settings.override(providers.Object(settings))
    return container


async def seed(app: FastAPI) -> None:
    for n in range(CHATS):
        body = b'{"title": "chat %d"}' % n
        await call(app, Request("POST", "/chats/", body=body), 0)
        for _ in range(MESSAGES):
            await call(app, Request("POST", "/chats/{chat}/messages/", body=BODY), n + 1)


async def measure(database_url: str) -> dict[tuple[str, str], list[float]]:
    results: dict[tuple[str, str], list[float]] = {}
    floor_app = floor.create_app(b'{"a": 1}')
    for round_ in range(ROUNDS):
        results.setdefault(("floor (bench/floor.py)", "GET limit=20"), []).append(
            await cpu_per_request(floor_app, ENDPOINTS["GET limit=20"])
        )
        for name, variant in VARIANTS.items():
            container = container_for(database_url)
            app = create_app(container)
            if variant is not None:
                variant(app)
            context: AbstractAsyncContextManager[Any] = running(app)
            async with context:
                if round_ == 0 and variant is None:
                    await seed(app)
                for endpoint, request in ENDPOINTS.items():
                    results.setdefault((name, endpoint), []).append(
                        await cpu_per_request(app, request)
                    )
            container.shutdown_resources()
        await handlers_alone(database_url, results)
    return results


async def handlers_alone(database_url: str, results: dict[tuple[str, str], list[float]]) -> None:
    """The chat document's read and the post on the loop's connections, without HTTP: the
    handler's plan and LoopDatabase, nothing of FastAPI, uvicorn or the app's layers."""
    container = container_for(database_url)
    app = create_app(container)
    async with running(app):
        database: LoopDatabase = app.state.loop_database
        document, post = container.get_chat_document(), container.post_message()

        async def read(chat: int) -> None:
            await database.read(document.plan(GetChat(chat, 20, principal=LOCAL)))

        async def write(chat: int) -> None:
            command = PostMessage(chat_id=chat, text=BODY.decode(), principal=LOCAL)
            plan = post.plan(command)
            assert plan is not None
            await database.write(plan, asyncio.get_running_loop().time() + 60)

        name = "the handler alone (plan + LoopDatabase)"
        results.setdefault((name, "GET limit=20"), []).append(await cpu_per_call(read))
        results.setdefault((name, "POST messages"), []).append(await cpu_per_call(write))
    container.shutdown_resources()


def table(results: dict[tuple[str, str], list[float]]) -> str:
    whole = "the whole app (ACCESS_LOG=true)"
    lines = [
        "| variant | " + " | ".join(ENDPOINTS) + " |",
        "|---|" + "---:|" * len(ENDPOINTS),
    ]
    for name in ["floor (bench/floor.py)", *VARIANTS, "the handler alone (plan + LoopDatabase)"]:
        cells = []
        for endpoint in ENDPOINTS:
            runs = results.get((name, endpoint))
            if runs is None:
                cells.append("")
                continue
            best = min(runs)
            base = min(results[(whole, endpoint)])
            saving = "" if name == whole else f" ({best - base:+.0f})"
            cells.append(f"{best:.0f}{saving}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    spread = statistics.median(
        max(runs) / min(runs) - 1 for runs in results.values() if len(runs) > 1
    )
    lines.append("")
    lines.append(
        f"µs of CPU per request, least of {ROUNDS} rounds of {REQUESTS} ({CONCURRENCY} at a "
        f"time); in brackets, against the whole app. Median spread between rounds "
        f"{spread:.0%}."
    )
    return "\n".join(lines)


def main() -> None:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's server binaries were not found")
    # Logging as `chatapi serve` sets it up, the request lines to a file as a log collector
    # would take them from stdout: the request log's cost is its line written too.
    with tempfile.NamedTemporaryFile("w", prefix="chatapi-layers-", suffix=".log") as lines:
        stdout, sys.stdout = sys.stdout, lines  # LOG_CONFIG's "ext://sys.stdout"
        logging.config.dictConfig(LOG_CONFIG)
        lean_log_records()  # as each serving process does (cli/serve.py create_app)
        sys.stdout = stdout
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:  # PostgreSQL on one core (its processes inherit it), the app on another
            os.sched_setaffinity(0, {cores[1]})
        with started_cluster(bindir) as cluster:
            os.sched_setaffinity(0, {cores[0]})
            migrations.upgrade(cluster.url)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                results = runner.run(measure(cluster.url))
        stop_writers()
    print(table(results))


if __name__ == "__main__":
    main()
