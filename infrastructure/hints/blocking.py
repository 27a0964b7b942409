"""Waiting for one chat's hints in a blocking thread: scripts and worker loops, not streams.

On PostgreSQL, BlockingHints holds a LISTEN connection of its own and waits with select() on its
socket; on SQLite, where no other process can send hints, SleepingHints only sleeps. Either way
the caller re-reads the database when the wait ends, woken or not, so a hint lost while the
connection was down costs latency, never a message.
"""

import logging
import select
import time
from typing import Protocol

from infrastructure.database import is_sqlite
from infrastructure.hints.connections import DatabaseError, PgConnection, connect_autocommit
from infrastructure.hints.payload import CHANNEL, decode

log = logging.getLogger("chatapi.hints")

APPLICATION_NAME = "chatapi follower"


class ChatHints(Protocol):
    def wait(self, timeout: float) -> bool:
        """True when the chat may have news, False after `timeout` seconds without a hint."""
        ...

    def close(self) -> None: ...


class BlockingHints:
    """One chat's hints, from every process, on a LISTEN connection that this object owns.

    The connection opens on the first wait and, once lost, again on the wait after; a wait
    that opens it answers True at once, since hints sent while nobody listened are gone.
    """

    def __init__(self, database_url: str, chat_id: int, connect_timeout: float) -> None:
        self._database_url = database_url
        self._chat_id = chat_id
        self._connect_timeout = connect_timeout
        self._connection: PgConnection | None = None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection, while there is one."""
        return None if self._connection is None else int(self._connection.info.backend_pid)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if self._connection is None:
            return self._connect(deadline)
        try:
            while True:
                if self._drain():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                select.select([self._connection], [], [], remaining)
                self._connection.poll()
        except DatabaseError as error:
            log.warning("follower lost its hint connection: %s", str(error).strip())
            self.close()
            # What was sent since is unknown: re-read now, listen again on the next wait.
            return True

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self, deadline: float) -> bool:
        try:
            self._connection = connect_autocommit(
                self._database_url, self._connect_timeout, APPLICATION_NAME
            )
            with self._connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
        except DatabaseError as error:
            self.close()
            log.warning("follower cannot listen for hints, polling: %s", str(error).strip())
            # Not woken: the caller re-reads once the wait is over, as it would after a hint.
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False
        return True

    def _drain(self) -> bool:
        """Whether the notifications received so far include this chat; forgets them."""
        assert self._connection is not None
        woken = False
        for notification in self._connection.notifies:
            hint = decode(notification.payload)
            if hint is not None and self._chat_id in hint.chat_ids:
                woken = True
        self._connection.notifies.clear()
        return woken


class SleepingHints:
    """SQLite: no process can tell another of a commit, so the caller polls."""

    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False

    def close(self) -> None:
        pass


def open_chat_hints(chat_id: int, database_url: str, connect_timeout: float) -> ChatHints:
    """The way to wait for this chat's hints on this database."""
    if is_sqlite(database_url):
        return SleepingHints()
    return BlockingHints(database_url, chat_id, connect_timeout)
