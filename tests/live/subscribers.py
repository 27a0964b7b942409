"""Subscribers of a chat's event stream, each on a connection and a thread of its own.

The test posts from its own thread while subscribers read; it then waits for what each one
received, within a deadline, and looks at the events, their order and their count.
"""

import socket
import threading
import time
from contextlib import suppress
from types import TracebackType
from typing import Any, Self

import httpx

from tests.live.processes import ServeProcess
from tests.live.sockets import client_port
from tests.support.sse import Event, SseParser

MESSAGE_POSTED = "message.posted"
CONNECT_SECONDS = 10.0
# Longer than any heartbeat the tests set: a stream silent for longer is broken. The tests'
# own deadlines are much shorter; this only bounds a read nobody waits for any more.
READ_SECONDS = 90.0
# The kernel may hand a few new connections in a row to one worker; forty is a fault.
MAX_TO_REACH_EVERY_WORKER = 40


class Subscriber:
    """`GET /chats/{chat_id}/events` read by a thread; `open()` returns once it answered 200."""

    def __init__(self, base_url: str, chat_id: int) -> None:
        self.url = f"{base_url}/chats/{chat_id}/events"
        self.status: int | None = None
        self.client_port: int | None = None
        self.events: list[Event] = []
        self.ended = False  # the server finished the response: its last chunk arrived
        self.error: BaseException | None = None
        self._socket: socket.socket | None = None
        self._answered = threading.Event()
        self._changed = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def open(self) -> Self:
        self._thread.start()
        answered = self._answered.wait(CONNECT_SECONDS + READ_SECONDS)
        assert answered, f"no answer from {self.url}"
        assert self.status == 200, (self.status, self.error)
        return self

    def _run(self) -> None:
        timeout = httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS)
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("GET", self.url) as response,
            ):
                self.client_port = client_port(response)
                stream: Any = response.extensions["network_stream"]
                self._socket = stream.get_extra_info("socket")
                self.status = response.status_code
                self._answered.set()
                parser = SseParser()
                for line in response.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        with self._changed:
                            self.events.append(event)
                            self._changed.notify_all()
            self.ended = True
        except BaseException as error:
            self.error = error
        finally:
            self._answered.set()
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def messages(self) -> list[Event]:
        with self._changed:
            return [event for event in self.events if event.event == MESSAGE_POSTED]

    def seqs(self) -> list[int]:
        """The `id` of every message.posted received, in the order received."""
        return [int(event.id or "-1") for event in self.messages()]

    def wait_for_messages(self, count: int, deadline: float) -> None:
        """Wait until `count` messages arrived, before `deadline` (time.monotonic())."""
        with self._changed:
            while len(self.messages()) < count and not self._done:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        received = len(self.messages())
        assert received >= count, (
            f"{received} of {count} messages received in time by the subscriber on port "
            f"{self.client_port}; ended={self.ended}, error={self.error!r}"
        )

    def wait_until_done(self, deadline: float) -> bool:
        """Wait until the stream ended, by the server or an error; False if not by `deadline`."""
        with self._changed:
            while not self._done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self) -> None:
        """Cut the connection (wakes the reading thread at once) and wait for the thread."""
        if self._socket is not None and not self._done:
            with suppress(OSError):  # closed already
                self._socket.shutdown(socket.SHUT_RDWR)
        if self._thread.ident is not None:  # opened
            self._thread.join(CONNECT_SECONDS + READ_SECONDS)

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_on_every_worker(
    server: ServeProcess, chat_id: int, at_least: int, workers: int
) -> list[Subscriber]:
    """At least `at_least` open subscribers, and more until each of the `workers` server
    processes holds one: new connections land on whichever worker accepts first."""
    subscribers: list[Subscriber] = []
    held_by: set[int] = set()
    try:
        while len(subscribers) < at_least or len(held_by) < workers:
            assert len(subscribers) < MAX_TO_REACH_EVERY_WORKER, (
                f"{len(subscribers)} streams opened, held by workers {held_by} only"
            )
            subscriber = Subscriber(server.base_url, chat_id)
            subscribers.append(subscriber)
            subscriber.open()
            held_by.add(server.worker_of(subscriber.client_port))
    except BaseException:
        for subscriber in subscribers:
            subscriber.close()
        raise
    return subscribers
