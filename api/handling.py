"""How an endpoint reaches its handler: the app's container, and one deadline-bound hop to a
handler thread once the database's schema is known to be migrated, or for the hot reads and
the post on PostgreSQL, their statements on the event loop (infrastructure/loop_database.py)."""

from collections.abc import Callable
from typing import Protocol, TypeVar

from fastapi import Request

from api.admission import Admission
from infrastructure.container import Container
from infrastructure.loop_database import LoopDatabase
from infrastructure.plans import Read, Write


def container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


Argument = TypeVar("Argument")
Result = TypeVar("Result")


async def handle(
    request: Request,
    handler: Callable[[Argument], Result],
    argument: Argument,
    chat_id: int | None = None,
) -> Result:
    """Run a handler in the threadpool, once the database's schema is known to be migrated.

    Until then (a fresh process, or a schema found changed), the check runs first, in the
    same thread hop; after, it costs a flag test. Here rather than in a dependency, which
    would run before FastAPI reports an invalid request: a 422 needs no database.
    `chat_id`: the handler writes to that chat, and waits for its turn (api/admission.py).
    """
    app = container(request)
    admission: Admission = request.app.state.admission
    schema = app.schema_check()
    if schema.verified:
        return await admission.run(handler, argument, chat_id=chat_id)
    engine = app.read_engine()

    def checked(argument: Argument) -> Result:
        schema.ensure(engine)
        return handler(argument)

    return await admission.run(checked, argument, chat_id=chat_id)


Query = TypeVar("Query", contravariant=True)


class ReadHandler(Protocol[Query, Result]):
    """A query handler whose statement can run on the loop: `plan` gives it with what its
    rows make, `__call__` runs it in the calling thread."""

    def __call__(self, query: Query) -> Result: ...

    def plan(self, query: Query) -> Read[Result]: ...


class WriteHandler(Protocol[Query, Result]):
    """A command handler whose work can run on the loop when `plan` gives it (None: not
    this command, which runs in a thread); `__call__` runs it in the calling thread."""

    def __call__(self, command: Query) -> Result: ...

    def plan(self, command: Query) -> Write[Result] | None: ...


def loop_database(request: Request) -> LoopDatabase | None:
    """The loop's connections, once the schema is known to be migrated (PostgreSQL without
    replicas: infrastructure/loop_database.py); None: run in a thread."""
    database: LoopDatabase | None = request.app.state.loop_database
    if database is None or not container(request).schema_check().verified:
        return None
    return database


async def read(request: Request, handler: ReadHandler[Argument, Result], query: Argument) -> Result:
    """`handler(query)`: its statement on the event loop when the app can (`loop_database`),
    else as `handle`."""
    database = loop_database(request)
    if database is None:
        return await handle(request, handler, query)
    admission: Admission = request.app.state.admission
    plan = handler.plan(query)
    return await admission.on_loop(lambda _deadline: database.read(plan))


async def write(
    request: Request, handler: WriteHandler[Argument, Result], command: Argument, chat_id: int
) -> Result:
    """`handler(command)`, a write of `chat_id`: on the event loop when the app can
    (`loop_database`) and the handler plans this command, else as `handle`. Either way
    after the chat's turn."""
    database = loop_database(request)
    plan = None if database is None else handler.plan(command)
    if database is None or plan is None:
        return await handle(request, handler, command, chat_id=chat_id)
    admission: Admission = request.app.state.admission
    return await admission.on_loop(lambda deadline: database.write(plan, deadline), chat_id=chat_id)
