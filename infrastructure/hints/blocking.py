"""Waiting for one chat's hints in a blocking thread (scripts, `chatapi follow`): on
PostgreSQL as the receiver of a HintChannel of its own; on SQLite, where no other process can
send hints, by sleeping. The caller reads the database when the wait ends, woken or not."""

import threading
import time
from collections.abc import Iterable
from typing import Protocol

from infrastructure.database import is_sqlite
from infrastructure.hints.channel import HintChannel


class ChatHints(Protocol):
    def wait(self, timeout: float) -> bool:
        """True when the chat may have news, False after `timeout` seconds without a hint."""
        ...

    def close(self) -> None: ...


class BlockingHints:
    """One chat's hints, from every process. A wait also answers True once the connection is
    up, once it is lost and once it is back: what was sent meanwhile is unknown."""

    def __init__(self, database_url: str, chat_id: int, connect_timeout: float) -> None:
        self._chat_id = chat_id
        self._woken = threading.Event()
        self.channel = HintChannel(database_url, self, connect_timeout, batch_delay=0.0)
        self.channel.listen()

    def publish(self, chat_ids: Iterable[int]) -> None:
        if self._chat_id in chat_ids:
            self._woken.set()

    def wake_all(self) -> None:
        self._woken.set()

    def wait(self, timeout: float) -> bool:
        woken = self._woken.wait(timeout)
        # A hint that came since the wait ended goes too: its commit is before the next read.
        self._woken.clear()
        return woken

    def close(self) -> None:
        self.channel.close()


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
