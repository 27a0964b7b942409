"""How an endpoint reaches its handler: the app's container, and one deadline-bound hop to a
handler thread once the database's schema is known to be migrated."""

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request

from api.admission import Admission
from infrastructure.container import Container


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
