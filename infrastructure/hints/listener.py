"""Receives the other processes' hints: one LISTEN connection per process, on its event loop.

The connection is asynchronous (psycopg2's async mode): the loop watches its socket with
add_reader and calls poll(), which reads whatever notifications arrived, so no thread waits
on it and no stream holds a connection. If the connection is lost, every stream is woken to
re-read and, while it is down, polls (see Publisher.listening); once it is back, every stream
is woken again, for what was committed while nobody listened.

A connection can die without its socket saying so (a host that vanished, a network that
drops packets). Keepalives catch that at the TCP level within about 20 s; in addition, every
`liveness_interval` seconds the loop sends "SELECT 1" without waiting for it, and if the
answer has not arrived by the next check the connection is given up. The check never blocks
the loop: the answer is read by the same poll() that reads notifications.
"""

import asyncio
import logging
from contextlib import suppress

from infrastructure.hints.connections import DatabaseError, PgConnection, connect_nonblocking
from infrastructure.hints.local import LocalHints
from infrastructure.hints.payload import CHANNEL, decode, is_from

log = logging.getLogger("chatapi.hints")

APPLICATION_NAME = "chatapi hint listener"
RETRY_DELAYS = (0.1, 5.0)  # first and longest pause between attempts to connect


class HintListener:
    """`start` on the event loop, `await stop()` on it at shutdown."""

    def __init__(
        self,
        database_url: str,
        token: str,
        hints: LocalHints,
        connect_timeout: float,
        liveness_interval: float = 10.0,
    ) -> None:
        self._database_url = database_url
        self._token = token
        self._hints = hints
        self._connect_timeout = connect_timeout
        self._liveness_interval = liveness_interval
        self._task: asyncio.Task[None] | None = None
        self._watched_fd: int | None = None
        self._backend_pid: int | None = None

    @property
    def up(self) -> bool:
        """Listening now: hints from every process reach this one."""
        return self._backend_pid is not None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection, while there is one."""
        return self._backend_pid

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=APPLICATION_NAME)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = RETRY_DELAYS[0]
        while True:
            try:
                connection = await self._connect()
            except DatabaseError as error:
                log.warning("hint listener cannot connect, streams poll: %s", str(error).strip())
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAYS[1])
                continue
            delay = RETRY_DELAYS[0]
            try:
                await self._listen(connection)
                log.warning("hint listener lost its connection, reconnecting; streams poll")
            except Exception:
                # Whatever went wrong, this task is all that brings hints back: it goes on.
                log.exception("hint listener failed, reconnecting; streams poll")
            finally:
                self._disconnect(connection)
            # A server that accepts and then drops every connection is not asked in a loop.
            await asyncio.sleep(delay)

    async def _connect(self) -> PgConnection:
        opening = asyncio.ensure_future(
            asyncio.to_thread(
                connect_nonblocking,
                self._database_url,
                self._connect_timeout,
                APPLICATION_NAME,
                f"LISTEN {CHANNEL}",
            )
        )
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # Stopped while connecting: the thread goes on, so close what it opens.
            opening.add_done_callback(_close_opened)
            raise

    async def _listen(self, connection: PgConnection) -> None:
        """Deliver the connection's notifications until it is lost."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()
        self._watched_fd = connection.fileno()
        loop.add_reader(self._watched_fd, self._on_readable, connection, lost)
        self._backend_pid = connection.info.backend_pid
        self._receive(connection)
        self._hints.wake_all()
        ping = connection.cursor()
        while True:
            await asyncio.wait([lost], timeout=self._liveness_interval)
            if lost.done():
                return
            if connection.isexecuting():
                log.warning("no answer on the hint connection in %s s", self._liveness_interval)
                return
            try:
                ping.execute("SELECT 1")
            except DatabaseError:
                return

    def _on_readable(self, connection: PgConnection, lost: asyncio.Future[None]) -> None:
        try:
            connection.poll()
        except DatabaseError:
            # The socket stays readable at its end: stop watching it now, not when the task
            # gets to run, and while its number cannot yet belong to another socket.
            self._unwatch()
            if not lost.done():
                lost.set_result(None)
            return
        self._receive(connection)

    def _receive(self, connection: PgConnection) -> None:
        chat_ids: set[int] = set()
        for notification in connection.notifies:
            # This process's own hints woke its streams at commit already.
            if is_from(notification.payload, self._token):
                continue
            hint = decode(notification.payload)
            if hint is not None:
                chat_ids |= hint.chat_ids
        connection.notifies.clear()
        if chat_ids:
            self._hints.publish(chat_ids)

    def _disconnect(self, connection: PgConnection) -> None:
        self._unwatch()
        self._backend_pid = None
        connection.close()
        # Streams waiting on a long timeout re-read now, and see that they must poll.
        self._hints.wake_all()

    def _unwatch(self) -> None:
        if self._watched_fd is not None:
            asyncio.get_running_loop().remove_reader(self._watched_fd)
            self._watched_fd = None


def _close_opened(opening: "asyncio.Future[PgConnection]") -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
