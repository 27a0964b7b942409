"""How an endpoint reaches its handler: the app's container, and one deadline-bound hop to a
handler thread once the database's schema is known to be migrated, or for the hottest reads
on PostgreSQL, their statement on the event loop (infrastructure/loop_reads.py)."""

from collections.abc import Callable
from typing import Protocol, TypeVar

from fastapi import Request

from api.admission import Admission
from infrastructure.container import Container
from infrastructure.driver_reads import Read
from infrastructure.loop_reads import LoopReads


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


async def read(request: Request, handler: ReadHandler[Argument, Result], query: Argument) -> Result:
    """`handler(query)`: its statement on the event loop when the app has loop reads (on
    PostgreSQL, without replicas) and the schema is known to be migrated; else as `handle`."""
    loop_reads: LoopReads | None = request.app.state.loop_reads
    if loop_reads is None or not container(request).schema_check().verified:
        return await handle(request, handler, query)
    admission: Admission = request.app.state.admission
    return await admission.on_loop(loop_reads.run, handler.plan(query))
