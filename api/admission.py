"""Where a request waits, and for how long: its chat's turn, a handler thread, the handler.

Every wait has a deadline, and missing one is a 503 with Retry-After (`Busy`) whose detail
names the wait:

- a write (a post or a delete) first waits for its chat's turn, on the event loop, holding
  no thread: at most CHAT_WRITES_IN_FLIGHT writes of one chat run at once, so a chat whose
  row lock is stuck ties up that many threads and reads and the other chats keep the rest;
- then for one of the WORKER_THREADS handler threads (anyio's default thread limiter);
  both waits together end THREAD_WAIT_TIMEOUT after the request began;
- then for the handler, until REQUEST_TIMEOUT after the request began (READY_TIMEOUT for
  the readiness probe).

At its deadline the request stops waiting for the handler, and cancels the PostgreSQL
statements of the connections its thread holds (infrastructure/cancellation.py): the
statement ends with an error, its transaction rolls back, and the thread returns at once,
giving back its thread token, its chat's turn and its connection, usable again; it gets
no other PostgreSQL connection. A command whose request stopped waiting rolls back instead
of committing (infrastructure/caller.py). What cannot be cancelled runs on until it
returns, keeping what it holds: Python code, a wait for a pooled connection, SQLite, a
statement on a frozen server (cancelled once it runs again). A frozen database ties up
WORKER_THREADS threads and no more, and later requests get their 503 after the thread wait.
"""

import asyncio
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Generic, TypeVar

from anyio import CapacityLimiter, WouldBlock, to_thread
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from infrastructure.caller import CallerGone, run_awaited
from infrastructure.cancellation import Cancellable
from infrastructure.failures import QUERY_CANCELED, sqlstate

log = logging.getLogger("chatapi")

# Which wait ran out, as a 503 says it.
CHAT_BUSY = "this chat's writes did not get a turn in time"
NO_THREAD = "no handler thread free in time"
STATEMENT_CANCELLED = "the database statement ran past the request's deadline and was cancelled"
TIMED_OUT = "the handler ran past the request's deadline"

Argument = TypeVar("Argument")
Result = TypeVar("Result")


class Busy(Exception):
    """The request could not start, or finish, within its deadline: 503 with Retry-After."""


class ChatTurns:
    """At most `per_chat` writes of one chat at once; the others wait for a turn, in order.

    A chat has a semaphore only while some write of it runs or waits: an idle chat leaves
    nothing behind. One per app, on its event loop.
    """

    def __init__(self, per_chat: int) -> None:
        self._per_chat = per_chat
        # chat id -> (its semaphore, how many writes hold or wait for a turn)
        self._chats: dict[int, tuple[asyncio.Semaphore, int]] = {}

    def __len__(self) -> int:
        """How many chats have writes running or waiting."""
        return len(self._chats)

    async def enter(self, chat_id: int, deadline: float) -> bool:
        """Take a turn, waiting until `deadline` (the loop's clock) at most; False if it
        passed first."""
        turn, users = self._chats.get(chat_id) or (asyncio.Semaphore(self._per_chat), 0)
        self._chats[chat_id] = (turn, users + 1)
        if not turn.locked():
            await turn.acquire()  # returns at once
            return True
        waiting = asyncio.timeout_at(deadline)
        try:
            async with waiting:
                await turn.acquire()
        except BaseException as exc:
            self._forget(chat_id)
            if isinstance(exc, TimeoutError) and waiting.expired():
                return False
            raise
        return True

    def leave(self, chat_id: int) -> None:
        self._chats[chat_id][0].release()
        self._forget(chat_id)

    def _forget(self, chat_id: int) -> None:
        turn, users = self._chats[chat_id]
        if users == 1:
            del self._chats[chat_id]
        else:
            self._chats[chat_id] = (turn, users - 1)


PENDING, RUNNING, DONE, ABANDONED = "pending", "running", "done", "abandoned"


class Call(Generic[Argument, Result]):
    """A handler's run in a worker thread, which its request may stop waiting for.

    `release` (on the event loop) gives back the thread token and the chat's turn, once:
    by the request when the result arrives, or at once if it stops waiting before the
    thread started, else by the thread when it returns at last: soon, once the statements
    of the connections it holds are cancelled.
    """

    def __init__(
        self,
        handler: Callable[[Argument], Result],
        argument: Argument,
        release: Callable[[], None],
    ) -> None:
        self._handler = handler
        self._argument = argument
        self._release = release
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._state = PENDING
        self._statements = Cancellable()

    def __call__(self) -> Result:  # in the worker thread
        with self._lock:
            if self._state == ABANDONED:
                raise CallerGone("abandoned before it started")  # never run: it got its 503
            self._state = RUNNING
        try:
            with self._statements:
                return run_awaited(self.abandoned, self._handler, self._argument)
        finally:
            with self._lock:
                abandoned = self._state == ABANDONED
                self._state = DONE
            if abandoned:
                with suppress(RuntimeError):  # the loop is closed: nothing left to give back
                    self._loop.call_soon_threadsafe(self._release)

    def abandoned(self) -> bool:
        return self._state == ABANDONED

    def finished(self) -> None:
        """The result (or the handler's error) has arrived."""
        self._release()

    def abandon(self) -> bool:
        """The request stops waiting; the thread, if it started, gives back what it holds
        when it returns. Whether it held connections, whose statements are being cancelled.
        Once."""
        with self._lock:
            running = self._state == RUNNING
            self._state = ABANDONED
        if not running:
            self._release()
            return False
        return self._statements.cancel()


class Admission:
    """The waits of every request that runs a handler in a thread; one per app."""

    def __init__(self, thread_wait: float, request_timeout: float, writes_per_chat: int) -> None:
        self.thread_wait = thread_wait
        self.request_timeout = request_timeout
        self.turns = ChatTurns(writes_per_chat)
        self._unlimited: CapacityLimiter | None = None

    async def run(
        self,
        handler: Callable[[Argument], Result],
        argument: Argument,
        *,
        chat_id: int | None = None,
        timeout: float | None = None,
    ) -> Result:
        """`handler(argument)` in a handler thread, within the deadlines; Busy if missed.

        `chat_id`: a write of that chat, which waits for its turn first. `timeout`: in place
        of REQUEST_TIMEOUT.
        """
        began = asyncio.get_running_loop().time()
        timeout = self.request_timeout if timeout is None else timeout
        release = await self._admit(chat_id, began + min(self.thread_wait, timeout))
        call = Call(handler, argument, release)
        if self._unlimited is None:
            # The thread token is taken already, from the default limiter: none more here.
            self._unlimited = CapacityLimiter(math.inf)
        # asyncio's timeout, not an anyio cancel scope: a third of the cost, on every request.
        running = asyncio.timeout_at(began + timeout)
        cancelled = False
        try:
            async with running:
                try:
                    result = await to_thread.run_sync(
                        call, abandon_on_cancel=True, limiter=self._unlimited
                    )
                except asyncio.CancelledError:
                    cancelled = call.abandon()
                    raise
                except BaseException:
                    call.finished()
                    raise
        except TimeoutError:
            if running.expired():
                raise Busy(STATEMENT_CANCELLED if cancelled else TIMED_OUT) from None
            raise
        call.finished()
        return result

    async def on_loop(
        self, work: Callable[[float], Awaitable[Result]], *, chat_id: int | None = None
    ) -> Result:
        """`await work(deadline)` on the event loop (infrastructure/loop_database.py), until
        that deadline, REQUEST_TIMEOUT after the request began (the loop's time); Busy if
        missed. `chat_id`: a write of that chat, which waits for its turn first, as in
        `run`. No thread and no thread wait: the work's own wait is for one of the loop's
        connections, bounded by DB_POOL_TIMEOUT; at the deadline its statement is
        cancelled, and a write done past it is not committed (its IN_TIME guard)."""
        began = asyncio.get_running_loop().time()
        if chat_id is not None:
            turn_deadline = began + min(self.thread_wait, self.request_timeout)
            if not await self.turns.enter(chat_id, turn_deadline):
                raise Busy(CHAT_BUSY)
        deadline = began + self.request_timeout
        running = asyncio.timeout_at(deadline)
        try:
            async with running:
                return await work(deadline)
        except TimeoutError:
            if running.expired():
                raise Busy(STATEMENT_CANCELLED) from None
            raise
        except DBAPIError as exc:
            if sqlstate(exc) == QUERY_CANCELED:  # its IN_TIME guard: past the deadline
                raise Busy(STATEMENT_CANCELLED) from None
            raise
        finally:
            if chat_id is not None:
                self.turns.leave(chat_id)

    async def _admit(self, chat_id: int | None, deadline: float) -> Callable[[], None]:
        """Wait for the chat's turn, then a thread token; what gives both back."""
        if chat_id is not None and not await self.turns.enter(chat_id, deadline):
            raise Busy(CHAT_BUSY)
        threads = to_thread.current_default_thread_limiter()
        token = object()
        try:
            try:
                threads.acquire_on_behalf_of_nowait(token)
            except WouldBlock:
                waiting = asyncio.timeout_at(deadline)
                try:
                    async with waiting:
                        await threads.acquire_on_behalf_of(token)
                except TimeoutError:
                    if waiting.expired():
                        raise Busy(NO_THREAD) from None
                    raise
        except BaseException:
            if chat_id is not None:
                self.turns.leave(chat_id)
            raise
        return self._releaser(threads, token, chat_id)

    def _releaser(
        self, threads: CapacityLimiter, token: object, chat_id: int | None
    ) -> Callable[[], None]:
        def release() -> None:
            threads.release_on_behalf_of(token)
            if chat_id is not None:
                self.turns.leave(chat_id)

        return release


def busy_handler(retry_after: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The exception handler for Busy: a 503 with Retry-After, `{"detail": ...}`."""

    async def busy(request: Request, exc: Exception) -> Response:
        # One of four fixed lines, each rate-limited on its own while an outage lasts.
        log.warning(f"503: {exc}")
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(retry_after)}
        )

    return busy
