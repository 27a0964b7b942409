"""The request lines' handler (cli/log_queue.py): a thread writes them, in order, all of them."""

import asyncio
import io
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import log_queue, serve
from cli.log_queue import QueuedStreamHandler
from infrastructure import migrations

WAIT_SECONDS = 5.0


class Stream(io.StringIO):
    """Notes which threads wrote and when it was flushed; `gate` cleared holds up writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[int] = set()
        self.flushed = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def write(self, text: str) -> int:
        assert self.gate.wait(WAIT_SECONDS), "the gate was never opened"
        self.writers.add(threading.get_ident())
        return super().write(text)

    def flush(self) -> None:
        super().flush()
        self.flushed.set()

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


@pytest.fixture
def stream() -> Stream:
    return Stream()


@pytest.fixture
def handler(stream: Stream) -> Iterator[QueuedStreamHandler]:
    handler = QueuedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    yield handler
    handler.close()


def log(handler: QueuedStreamHandler, message: str) -> None:
    handler.handle(logging.makeLogRecord({"msg": message}))


def wait_for(condition: threading.Event) -> None:
    assert condition.wait(WAIT_SECONDS), "not within the wait"


def test_a_thread_writes_every_line_in_order(handler: QueuedStreamHandler, stream: Stream) -> None:
    for n in range(1000):
        log(handler, f"line {n}")
    handler.stop()
    assert stream.lines() == [f"line {n}" for n in range(1000)]
    assert threading.get_ident() not in stream.writers


def test_a_stream_that_blocks_holds_up_no_caller(
    handler: QueuedStreamHandler, stream: Stream
) -> None:
    """As a pipe whose reader lags would: the lines wait in the queue, not the caller."""
    stream.gate.clear()
    started = time.monotonic()
    for n in range(100):
        log(handler, f"line {n}")
    assert time.monotonic() - started < WAIT_SECONDS / 2
    stream.gate.set()
    handler.stop()
    assert stream.lines() == [f"line {n}" for n in range(100)]


def test_lines_gather_while_the_thread_waits(
    handler: QueuedStreamHandler, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_queue, "BATCH_SECONDS", 60.0)
    log(handler, "first")
    wait_for(stream.flushed)  # written: the thread now waits before it looks again
    log(handler, "second")
    time.sleep(0.1)
    assert stream.lines() == ["first"]
    started = time.monotonic()
    handler.stop()  # does not wait out the minute
    assert time.monotonic() - started < WAIT_SECONDS / 2
    assert stream.lines() == ["first", "second"]


def test_once_stopped_a_line_is_written_at_once(
    handler: QueuedStreamHandler, stream: Stream
) -> None:
    log(handler, "queued")
    handler.stop()
    stream.writers.clear()
    log(handler, "after")
    assert stream.lines() == ["queued", "after"]
    assert stream.writers == {threading.get_ident()}


def test_a_forked_process_writes_its_own_lines(tmp_path: Path) -> None:
    """Its parent's thread does not exist there: it starts one of its own."""
    path = tmp_path / "lines"
    with path.open("w") as file:
        handler = QueuedStreamHandler(file)
        log(handler, "parent")
        pid = os.fork()
        if pid == 0:  # the child
            log(handler, "child")
            handler.stop()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        handler.close()
    assert sorted(path.read_text().splitlines()) == ["child", "parent"]


def test_the_served_app_writes_out_the_queued_lines_once_shut_down(
    handler: QueuedStreamHandler,
    stream: Stream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before uvicorn raises SIGTERM again: that kills a worker process, no exit handler run."""
    url = f"sqlite:///{tmp_path / 'chatapi.db'}"
    migrations.upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr(log_queue, "BATCH_SECONDS", 60.0)
    app = serve.create_app()

    async def serve_then_shut_down() -> None:
        async with app.router.lifespan_context(app):
            log(handler, "first")
            wait_for(stream.flushed)
            log(handler, "second")  # left to gather for a minute

    asyncio.run(serve_then_shut_down())
    assert stream.lines() == ["first", "second"]
