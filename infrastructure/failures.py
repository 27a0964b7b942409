"""Database failures that are not the request's fault, and commands run again after one that
PostgreSQL settled by rolling their transaction back."""

import logging
import random
from collections.abc import Callable
from time import sleep
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from infrastructure.plans import Write

log = logging.getLogger("chatapi")

# PostgreSQL rolled the transaction back to settle a conflict with another one: nothing of it
# was kept, so the whole command can run again (an idempotency key's claim included).
CONFLICTS = {"40001": "serialization_failure", "40P01": "deadlock_detected"}
READ_ONLY_SQL_TRANSACTION = "25006"
# A statement cancelled: by its deadline's cancel request, or by a write's IN_TIME guard.
QUERY_CANCELED = "57014"
# The server cannot take any write now, whatever the request; the same request may succeed
# in a moment, or on the server that DATABASE_URL leads to after a failover.
UNAVAILABLE = {
    READ_ONLY_SQL_TRANSACTION: "read_only_sql_transaction",  # a standby: after a failover
    "53300": "too_many_connections",
    "57P01": "admin_shutdown",  # stopping, or the session ended by pg_terminate_backend
    "57P02": "crash_shutdown",
    "57P03": "cannot_connect_now",  # starting up, or recovering
    **CONFLICTS,  # once the retries are used up
}
CONNECTION_EXCEPTION = "08"  # the class of SQLSTATEs of a broken connection
ATTEMPTS = 3
FIRST_PAUSE_SECONDS = 0.01

Command = TypeVar("Command")
Result = TypeVar("Result")


def sqlstate(exc: DBAPIError) -> str | None:
    """PostgreSQL's code for the error (None from SQLite, or for a connection not made)."""
    code = getattr(exc.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_unavailable(exc: DBAPIError) -> bool:
    """Whether the database's state, not the request, made `exc`: a 503, never a 500.

    Every OperationalError counts: a connection refused or lost has no SQLSTATE, and SQLite's
    "database is locked" is one too.
    """
    code = sqlstate(exc)
    if code is not None and (code in UNAVAILABLE or code.startswith(CONNECTION_EXCEPTION)):
        return True
    return exc.connection_invalidated or isinstance(exc, OperationalError)


def conflict(exc: DBAPIError) -> str | None:
    """The conflict PostgreSQL settled by rolling `exc`'s transaction back, if it did: the
    command may run again, whole."""
    return CONFLICTS.get(sqlstate(exc) or "")


def pause_before(attempt: int) -> float:
    """Seconds to wait before running a command again after its `attempt`th run collided:
    random, up to 10 ms, then up to 20 ms, so the transactions do not collide again in step."""
    return random.uniform(0, FIRST_PAUSE_SECONDS * 2 ** (attempt - 1))


class Retrying(Generic[Command, Result]):
    """`handler`, run again when PostgreSQL rolled its transaction back over a conflict.

    Up to ATTEMPTS runs in all, with a pause (`pause_before`) between them; the last run's
    failure is raised. `plan` is the handler's (commands/post_message.py), for the event
    loop, which retries its runs the same way (infrastructure/loop_database.py).
    """

    def __init__(self, handler: Callable[[Command], Result]) -> None:
        self._handler = handler

    def __call__(self, command: Command) -> Result:
        for attempt in range(1, ATTEMPTS):
            try:
                return self._handler(command)
            except DBAPIError as exc:
                collided = conflict(exc)
                if collided is None:
                    raise
                log.info("%s ran into %s, running it again", type(command).__name__, collided)
            sleep(pause_before(attempt))
        return self._handler(command)

    def plan(self, command: Command) -> "Write[Result] | None":
        """The handler's plan of `command` for the event loop; None if it has none."""
        plan: Callable[[Command], Write[Result] | None] | None = getattr(
            self._handler, "plan", None
        )
        return None if plan is None else plan(command)
