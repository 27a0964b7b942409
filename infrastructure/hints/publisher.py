"""One Publisher per process: a hint goes to this process's streams at once and, on
PostgreSQL, through its HintChannel to every other process, whose hints it hears in turn. On
SQLite hints stay in the process (the CLI cannot reach a server's streams): streams there poll
about once a second as well (see `listening`)."""

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence

from domain.events import MessagePosted
from infrastructure.database import is_sqlite
from infrastructure.hints.channel import HintChannel
from infrastructure.hints.local import LocalHints
from infrastructure.settings import Settings

# How often a stream re-reads on its own while hints from other processes cannot reach it.
POLL_INTERVAL = 1.0


class Publisher:
    """`publish` from the unit of work after each commit; `hints.follow` from the writers.
    `start` and `stop` in the app's lifespan; a process without a loop (a CLI command) never
    listens, and calls `close()` before it exits, so that its last hints are sent."""

    def __init__(
        self, database_url: str, connect_timeout: float = 5.0, batch_delay: float = 0.005
    ) -> None:
        self.hints = LocalHints()
        self.channel: HintChannel | None = None
        if not is_sqlite(database_url):
            self.channel = HintChannel(database_url, self.hints, connect_timeout, batch_delay)

    @property
    def listening(self) -> bool:
        """Hints from every process reach this one now; if not, streams poll."""
        return self.channel is not None and self.channel.listening

    def wait_timeout(self, idle: float) -> float:
        """How long a stream may wait for a hint: `idle`, or POLL_INTERVAL if it must poll."""
        return idle if self.listening else min(idle, POLL_INTERVAL)

    def publish(
        self, chat_ids: Iterable[int], posted: Mapping[int, Sequence[MessagePosted]] | None = None
    ) -> None:
        """These chats changed and the change is committed: `posted`, the messages it added,
        for this process's streams (the others get the chat ids, and read). Never waits."""
        chat_ids = frozenset(chat_ids)
        if not chat_ids:
            return
        self.hints.publish(chat_ids, posted)
        if self.channel is not None:
            self.channel.send(chat_ids)

    async def start(self) -> None:
        self.hints.loop = asyncio.get_running_loop()
        if self.channel is not None:
            self.channel.listen()

    async def stop(self) -> None:
        self.hints.loop = None
        await asyncio.to_thread(self.close)

    def close(self, timeout: float = 2.0) -> None:
        """Send the hints still queued (waiting at most `timeout` seconds); listen no more."""
        if self.channel is not None:
            self.channel.close(timeout)


def open_publisher(settings: Settings) -> Iterator[Publisher]:
    """The process's Publisher, as a container Resource: closed when resources shut down."""
    publisher = Publisher(settings.database_url, connect_timeout=settings.db_connect_timeout)
    yield publisher
    publisher.close()
