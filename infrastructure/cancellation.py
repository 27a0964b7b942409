"""Cancelling the PostgreSQL statements of a handler whose request stopped waiting for it.

A thread blocked in the driver cannot be stopped, but its statement can: a cancel request,
sent from another thread, ends it with an error (SQLSTATE 57014), the thread returns, its
transaction rolls back, and its connection, idle and usable again, goes back to the pool.
So a request whose deadline passes (api/admission.py) cancels the statements of the
connections its handler thread holds, and the thread is free at the deadline rather than
when PostgreSQL would have finished.

The cancel goes through libpq's PQcancel, as psycopg2's `connection.cancel()` does, but
called through ctypes, which lets go of the GIL meanwhile: psycopg2 keeps it, and PQcancel
waits for the postmaster's answer, which a frozen server never gives, so the whole process
would stop with it. The key it needs is taken once per connection, as it is made
(PQgetCancel copies what it needs from the connection), and freed with the CancelKey.

A cancel acts a moment after it is sent: had the statement ended meanwhile, it could end
the next statement on that connection, another request's. So a connection goes back to the
pool only once no cancel of it is in flight; PQcancel returns once the server has passed it
on, and a session that is idle by then ignores it.

SQLite: nothing is cancelled. Its statements are short, and its wait for the write lock
(the busy timeout) cannot be interrupted.
"""

import ctypes
import logging
import threading
import weakref
from contextvars import ContextVar, Token
from functools import cache
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from infrastructure.caller import CallerGone

log = logging.getLogger("chatapi")

ERROR_BUFFER_BYTES = 256  # what libpq's documentation asks for
# In a pooled connection's `info`: its CancelKey; and while it is checked out by a run that
# may be cancelled, that run (its Cancellable).
KEY, HOLDER = "chatapi.cancel_key", "chatapi.cancellable"


@cache
def _libpq() -> ctypes.CDLL:
    """The libpq psycopg2 is linked with (the binary wheel brings its own), found through
    psycopg2's extension module: the PGconn it hands out is that library's."""
    from psycopg2 import _psycopg  # type: ignore[import-untyped]

    libpq = ctypes.CDLL(_psycopg.__file__)  # CDLL, not PyDLL: calls let go of the GIL
    libpq.PQgetCancel.argtypes = [ctypes.c_void_p]
    libpq.PQgetCancel.restype = ctypes.c_void_p
    libpq.PQcancel.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    libpq.PQcancel.restype = ctypes.c_int
    libpq.PQfreeCancel.argtypes = [ctypes.c_void_p]
    libpq.PQfreeCancel.restype = None
    return libpq


class CancelKey:
    """What cancels the statement running on one PostgreSQL connection, from any thread."""

    def __init__(self, dbapi_connection: Any) -> None:
        libpq = _libpq()
        # Taken in the thread that made the connection, before anyone uses it.
        self._pointer: int | None = libpq.PQgetCancel(dbapi_connection.pgconn_ptr)
        if self._pointer:
            # Not at exit: a cancel to a frozen server may still be using it then.
            weakref.finalize(self, libpq.PQfreeCancel, self._pointer).atexit = False

    def send(self) -> None:
        """Ask the server to cancel the statement running now, if any. Blocks until the
        server has passed the request on (at once, unless it is frozen)."""
        errors = ctypes.create_string_buffer(ERROR_BUFFER_BYTES)
        if not self._pointer or not _libpq().PQcancel(self._pointer, errors, len(errors)):
            reason = errors.value.decode(errors="replace").strip() or "no cancel key"
            log.warning("a statement past its request's deadline was not cancelled: %s", reason)


_running: ContextVar["Cancellable | None"] = ContextVar("cancellable", default=None)


class Cancellable:
    """The PostgreSQL connections a handler run holds, whose statements its request cancels
    when it stops waiting. One per run; `with` it around the run, in the handler's thread."""

    def __init__(self) -> None:
        # Held while a cancel is in flight: a connection goes back to the pool after it.
        self._lock = threading.Lock()
        self._held: dict[ConnectionPoolEntry, CancelKey] = {}
        self._cancelled = False
        self._token: Token[Cancellable | None] | None = None

    def __enter__(self) -> Self:
        self._token = _running.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _running.reset(self._token)

    def cancel(self) -> bool:
        """Cancel the statements on the connections the run holds now, in a thread of their
        own (never waiting), and refuse it any other connection: whether it held any."""
        with self._lock:
            self._cancelled = True
            held = bool(self._held)
        if held:
            threading.Thread(target=self._send, name="chatapi-cancel", daemon=True).start()
        return held

    def _send(self) -> None:
        with self._lock:
            for key in self._held.values():
                key.send()

    def _checked_out(self, record: ConnectionPoolEntry, key: CancelKey) -> None:
        with self._lock:
            if self._cancelled:
                # Given back at once (and closed): the run's request has its 503 already.
                raise CallerGone("the caller stopped waiting; no new connection")
            self._held[record] = key
            record.info[HOLDER] = self

    def _returned(self, record: ConnectionPoolEntry) -> None:
        with self._lock:  # after a cancel in flight: it must not reach the next statement
            self._held.pop(record, None)


def watch(engine: Engine) -> None:
    """Let requests cancel the statements of the PostgreSQL `engine`'s connections."""
    event.listen(engine, "connect", _take_cancel_key)
    event.listen(engine, "checkout", _held_by_the_run)
    # Before the pool's own ROLLBACK, and before a connection that goes back is used again;
    # a connection discarded instead is not reset, but invalidated.
    event.listen(engine, "reset", _given_back)
    event.listen(engine, "invalidate", _given_back)


def _take_cancel_key(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[KEY] = CancelKey(dbapi_connection)


def _held_by_the_run(dbapi_connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
    run = _running.get()
    key = record.info.get(KEY)
    if run is not None and key is not None:
        run._checked_out(record, key)


def _given_back(dbapi_connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
    run = record.info.pop(HOLDER, None)
    if run is not None:
        run._returned(record)
