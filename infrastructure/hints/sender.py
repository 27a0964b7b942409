"""Sends this process's hints to the other processes, after commit, in batches.

Never NOTIFY inside a writer's transaction: NOTIFY takes a cluster-wide lock that is held
across the commit's flush to disk, which cut INSERT throughput from 12,491 to 3,793 tps at
32 clients when measured here. Writers only add chat ids to a set; one thread per process
sends whatever has gathered every couple of milliseconds, in one statement on its own
connection.
"""

import logging
import threading
from collections.abc import Iterable

from infrastructure.hints.connections import DatabaseError, PgConnection, connect_autocommit
from infrastructure.hints.payload import CHANNEL, encode

log = logging.getLogger("chatapi.hints")

APPLICATION_NAME = "chatapi hint sender"
NOTIFY = "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload"
RETRY_DELAYS = (0.1, 5.0)  # first and longest pause between attempts while the server is away


class HintSender:
    """`send` from any thread; `close` once, when the process is done writing.

    The thread and its connection start with the first hint: a process that never writes
    holds no connection for this. A hint that cannot be sent is kept (one id per chat) and
    goes with the first batch that can be: it only ever costs other processes latency.
    """

    def __init__(
        self, database_url: str, token: str, connect_timeout: float, batch_delay: float = 0.002
    ) -> None:
        self._database_url = database_url
        self._token = token
        self._connect_timeout = connect_timeout
        self._batch_delay = batch_delay
        self._changed = threading.Condition()
        self._pending: set[int] = set()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._connection: PgConnection | None = None
        self.backend_pid: int | None = None

    def send(self, chat_ids: Iterable[int]) -> None:
        """Queue hints for these chats. Thread-safe, and never waits for the network."""
        with self._changed:
            if self._closing:
                return
            was_idle = not self._pending
            self._pending.update(chat_ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=APPLICATION_NAME)
                # A process that exits without close() must not hang on a server that is away.
                self._thread.daemon = True
                self._thread.start()
            elif was_idle and self._pending:
                self._changed.notify()

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (waiting at most `timeout` seconds), then stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify()
            thread = self._thread
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("hints of this process not sent within %s s of closing", timeout)

    def _run(self) -> None:
        delay = RETRY_DELAYS[0]
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    break
                if not self._closing:
                    # The other threads committing now join this batch.
                    self._changed.wait_for(lambda: self._closing, timeout=self._batch_delay)
                batch, self._pending = self._pending, set()
            if self._notify(batch):
                delay = RETRY_DELAYS[0]
                continue
            with self._changed:
                self._pending |= batch
                if self._closing:
                    break
                self._changed.wait_for(lambda: self._closing, timeout=delay)
            delay = min(delay * 2, RETRY_DELAYS[1])
        self._disconnect()

    def _notify(self, chat_ids: set[int]) -> bool:
        payloads = encode(self._token, chat_ids)
        if self._connection is not None:
            try:
                self._execute(self._connection, payloads)
                return True
            except DatabaseError:
                # Dropped since the last batch (a server restart, an idle timeout): one more
                # try, on a new connection.
                self._disconnect()
        try:
            self._connection = connect_autocommit(
                self._database_url, self._connect_timeout, APPLICATION_NAME
            )
            self.backend_pid = self._connection.info.backend_pid
            self._execute(self._connection, payloads)
            return True
        except DatabaseError as error:
            self._disconnect()
            log.warning("cannot send hints, will retry: %s", str(error).strip())
            return False

    @staticmethod
    def _execute(connection: PgConnection, payloads: list[str]) -> None:
        with connection.cursor() as cursor:
            cursor.execute(NOTIFY, (CHANNEL, payloads))

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self.backend_pid = None
