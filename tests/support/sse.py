"""Reading Server-Sent Events as a client does, for the tests of event streams.

`SseParser` follows the WHATWG rules for the fields a test looks at (event, data, id, retry,
comments); `EventReader` parses a streamed httpx response with it. `open_events` opens one:

    with open_events(client, f"/chats/{chat_id}/events", after=0) as events:
        event = events.next()          # the next dispatched event (ping comments are counted)
        assert event.id == "1" and event.json()["seq"] == 1
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Event:
    event: str  # "message" when the block names none, as EventSource does
    data: str
    id: str | None  # the block's own `id:` field, if it had one

    def json(self) -> Any:
        return json.loads(self.data)


class StreamEnded(Exception):
    """The server ended the response before the event the caller asked for."""


class SseParser:
    """Turns lines (without their line ends) into events, as an EventSource would."""

    def __init__(self) -> None:
        self.comments: list[str] = []
        self.retry: int | None = None  # the last `retry:` the server sent
        self.last_event_id: str | None = None  # what a reconnecting browser sends back
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        """The event that `line` completes (a blank line after data), if any."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        event = Event(self._event or "message", "\n".join(self._data), self._id)
        has_data = bool(self._data)
        self._event, self._data, self._id = "", [], None
        # A block without data (only `retry:`, say) dispatches nothing.
        return event if has_data else None


class EventReader:
    """The events of a streamed response, read as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = SseParser()
        self._lines = response.iter_lines()

    def next(self) -> Event:
        """The next event; StreamEnded if the response ends first. Blocks until the client's
        read timeout at most, which fails the test rather than hanging it."""
        for line in self._lines:
            event = self.parser.feed(line)
            if event is not None:
                return event
        raise StreamEnded(f"the stream ended; comments: {self.parser.comments}")

    def read_until(self, done: Callable[[], bool]) -> list[Event]:
        """Reads until `done()` holds (say, a number of heartbeat comments); returns the events
        dispatched meanwhile."""
        events = []
        for line in self._lines:
            event = self.parser.feed(line)
            if event is not None:
                events.append(event)
            if done():
                return events
        raise StreamEnded(f"the stream ended; comments: {self.parser.comments}")

    def take(self, count: int) -> list[Event]:
        return [self.next() for _ in range(count)]

    def rest(self) -> list[Event]:
        """Every event until the server ends the response."""
        events = []
        while True:
            try:
                events.append(self.next())
            except StreamEnded:
                return events


@contextmanager
def open_events(
    client: httpx.Client,
    path: str,
    after: int | None = None,
    last_event_id: int | str | None = None,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> Iterator[EventReader]:
    """A stream of events, which must answer 200; closed on exit.

    `timeout`: the longest wait for any bytes (a heartbeat counts), so a stream that goes
    silent fails the test instead of hanging it. `headers`: an Authorization, say.
    """
    params = {} if after is None else {"after": after}
    headers = dict(headers or {})
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with client.stream(
        "GET", path, params=params, headers=headers, timeout=httpx.Timeout(timeout)
    ) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"{response.status_code}: {response.text}")
        yield EventReader(response)
