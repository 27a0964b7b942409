"""Hints between processes over PostgreSQL LISTEN/NOTIFY: one thread, one connection each.

Writers only add chat ids to a set; the thread sends what has gathered in one statement, at
once after a quiet spell, else `batch_delay` after the previous one: at most one NOTIFY per
`batch_delay`, whose cost (the thread's wake-ups and GIL hand-offs) the batch's posts
share: ~46 µs a post with a NOTIFY every 2 ms, ~25 every 5 ms (bench/layers.py). After
commit: a NOTIFY inside the writer's transaction takes a
cluster-wide lock held across the commit's flush (INSERTs at 32 clients fell from 12,491 to
3,793 tps when measured here). Once `listen` is called, the thread also waits in select() on
the connection, hands the other processes' hints to its receiver (its own come back from its
own backend pid, and are dropped) and wakes the receiver whole when the connection comes up
or is lost (streams then poll). A hint that cannot be sent goes with the next batch that can.
"""

import logging
import math
import select
import socket
import threading
import time
from collections.abc import Iterable
from typing import Protocol

import psycopg2  # type: ignore[import-untyped]

from infrastructure.database import PgConnection, connect

log = logging.getLogger("chatapi.hints")

CHANNEL = "chatapi_hints"
NOTIFY = "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload"
# A payload is chat ids, "7,12,40". They are below 2**63, so at most 20 bytes with the comma:
# 350 stay under 7,000 bytes, and PostgreSQL refuses a payload of 8,000 bytes or more.
IDS_PER_PAYLOAD = 350
# The connection in pg_stat_activity: listening, or only sending (a CLI command).
APPLICATION_NAME = "chatapi hints"
SENDING_ONLY_NAME = "chatapi hints, sending only"
RETRY_DELAYS = (0.1, 5.0)  # first and longest pause between attempts to connect


class Receiver(Protocol):
    """Who the channel delivers to: LocalHints in a server, one chat's follower in a script."""

    def publish(self, chat_ids: Iterable[int]) -> None: ...

    def wake_all(self) -> None: ...


def encode(chat_ids: Iterable[int]) -> list[str]:
    """The payloads that carry these chat ids, IDS_PER_PAYLOAD at most in each."""
    ids = sorted(set(chat_ids))
    return [
        ",".join(map(str, ids[start : start + IDS_PER_PAYLOAD]))
        for start in range(0, len(ids), IDS_PER_PAYLOAD)
    ]


def decode(payload: str) -> set[int]:
    """The chat ids in a payload (what is not one, in a payload this module did not write, is
    left out)."""
    return {int(chat_id) for chat_id in payload.split(",") if chat_id.isdecimal()}


class HintChannel:
    """`send` from any thread, `listen` once there is someone to deliver to, `close` once. The
    thread (a daemon) and its connection start with the first call: none in a process that
    neither writes nor listens."""

    def __init__(
        self, database_url: str, receiver: Receiver, connect_timeout: float, batch_delay: float
    ) -> None:
        self._database_url = database_url
        self._receiver = receiver
        self._connect_timeout = connect_timeout
        self._batch_delay = batch_delay
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._last_sent = -math.inf  # when the last NOTIFY went out
        self._listen = self._closing = False
        self._thread: threading.Thread | None = None
        # A byte written to one ends the thread's select() on the other: news for it.
        self._poked, self._poke = socket.socketpair()
        self.backend_pid: int | None = None  # the connection's server process, while up
        self.listening = False

    def send(self, chat_ids: Iterable[int]) -> None:
        """Queue hints for these chats. Thread-safe, and never waits for the network."""
        with self._lock:
            if self._closing:
                return
            was_idle = not self._pending
            self._pending.update(chat_ids)
            if was_idle and self._pending:
                self._wake()

    def listen(self) -> None:
        """Deliver the other processes' hints to the receiver from now on, until close."""
        with self._lock:
            if not self._closing:
                self._listen = True
                self._wake()

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (waiting at most `timeout` seconds), then stop the thread."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            thread = self._thread
            if thread is None:
                return
            self._wake()
        thread.join(timeout)
        if self._pending:
            log.warning("hints of this process not sent within %s s of closing", timeout)

    def _wake(self) -> None:
        """Start the thread, or end its wait in select(). Under the lock."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=APPLICATION_NAME, daemon=True)
            self._thread.start()
        elif self._poke.fileno() != -1:  # not after the thread closed it, on its way out
            try:
                self._poke.send(b"!")
            except OSError as error:
                # Never seen but once in CI (EBADF in close(), cause not found): the thread
                # then notices news at its next wake-up instead; a writer or close() is
                # never failed for it.
                log.warning("hint channel's wake-up not sent: %s", error)

    def _run(self) -> None:
        delay = RETRY_DELAYS[0]
        while not self._closing or self._pending:  # closing: one more try to send them
            try:
                connection = connect(self._database_url, self._connect_timeout, SENDING_ONLY_NAME)
                delay = RETRY_DELAYS[0]
                self._serve(connection)
            except psycopg2.Error as error:
                log.warning("hint channel down, streams poll: %s", str(error).strip())
            except Exception:
                # Whatever went wrong, this thread is all that carries hints: it goes on.
                log.exception("hint channel failed, streams poll")
            if self._closing:
                break
            retry_at = time.monotonic() + delay  # writers' pokes do not shorten the pause
            while not self._closing and (left := retry_at - time.monotonic()) > 0:
                self._wait_for_news(None, left)
            delay = min(delay * 2, RETRY_DELAYS[1])
        # Under the lock: the thread reads `_closing` without it, so it may be on its way out
        # while close(), which set it, is about to poke it (an EBADF on a closed socket).
        with self._lock:
            self._poked.close()
            self._poke.close()

    def _serve(self, connection: PgConnection) -> None:
        """Send and receive on the connection until it is lost or the channel closes."""
        self.backend_pid = connection.info.backend_pid
        try:
            while True:
                if self._listen and not self.listening:
                    with connection.cursor() as cursor:
                        cursor.execute(f"SET application_name = '{APPLICATION_NAME}'")
                        cursor.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    self._receiver.wake_all()
                wait = self._send_due(connection)
                self._deliver(connection)
                if self._closing and not self._pending:
                    return
                self._wait_for_news(connection, wait)
        finally:
            connection.close()
            self.backend_pid = None
            if self.listening:
                self.listening = False
                # Streams re-read now, whatever they missed, and see that they must poll.
                self._receiver.wake_all()

    def _send_due(self, connection: PgConnection) -> float | None:
        """Send the hints that are due; how long until the others are (None: none pending)."""
        with self._lock:
            if not self._pending:
                return None
            due_in = self._last_sent + self._batch_delay - time.monotonic()
            if due_in > 0 and not self._closing:
                return due_in  # the other threads committing meanwhile join this batch
            batch, self._pending = self._pending, set()
        try:
            with connection.cursor() as cursor:
                cursor.execute(NOTIFY, (CHANNEL, encode(batch)))
        except BaseException:
            with self._lock:
                self._pending |= batch
            raise
        self._last_sent = time.monotonic()
        return None  # a hint queued since then came with a poke

    def _deliver(self, connection: PgConnection) -> None:
        chat_ids: set[int] = set()
        for notification in connection.notifies:
            if notification.pid != self.backend_pid:  # not this process's own hint
                chat_ids |= decode(notification.payload)
        connection.notifies.clear()
        if chat_ids:
            self._receiver.publish(chat_ids)

    def _wait_for_news(self, connection: PgConnection | None, timeout: float | None) -> None:
        """Until a poke or `timeout` seconds (None: no limit), or, with a connection, until
        something arrives on it (poll() reads it; raises if the connection is lost)."""
        watched = [self._poked] if connection is None else [self._poked, connection]
        ready = select.select(watched, [], [], timeout)[0]
        if self._poked in ready:
            self._poked.recv(4096)
        if connection is not None and connection in ready:
            connection.poll()
