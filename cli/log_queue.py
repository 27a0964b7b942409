"""A log handler that leaves the writing to a thread: `chatapi serve`'s request lines.

Written by the event loop, each request line (api/request_log.py) was a write(2) of its own
(a StreamHandler flushes every record), made while every other request on the loop waited,
and made blocking outright when stdout is a pipe whose reader falls behind. Here the loop
only formats the line (the record's message is the JSON line already) and queues it; a
thread writes the queued lines and flushes them, then lets the next ones gather for
BATCH_SECONDS. Woken for every line instead, the thread cost the loop as much as the writes
did (waking it, then the GIL handed back and forth), when measured.

Each process writes its own lines: the thread starts with the first line logged in the
process (uvicorn's worker processes, spawned, configure logging anew; a process forked from
one that has started it gets a queue and a thread of its own). `stop_writers()` writes out what
is queued and ends the thread; after it, lines are written as they come. It is called when
the app has shut down (cli/serve.py): a worker process is killed next, by the SIGTERM that
uvicorn raises again, without running exit handlers. Otherwise logging's exit handler
closes the handler, which stops it.
"""

import logging
import logging.handlers
import os
import queue
import sys
import threading
import weakref
from typing import Any, TextIO

# How long the thread lets lines gather once it has written those queued. Also how late a line
# can reach the stream.
BATCH_SECONDS = 0.05

_handlers: "weakref.WeakSet[QueuedStreamHandler]" = weakref.WeakSet()


class QueuedStreamHandler(logging.handlers.QueueHandler):
    """A StreamHandler whose writes happen on a thread of their own.

    Configure it with "()" rather than "class": from Python 3.12, dictConfig builds a
    QueueHandler named by "class" with a queue and a listener of its own making.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(queue.SimpleQueue())
        self.stream = sys.stderr if stream is None else stream
        self._writer: _LineWriter | None = None  # started with the first line
        self._stopped = False
        _handlers.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock: one record at a time, and never during stop().
        try:
            line = self.format(record)
            if self._writer is None:
                if self._stopped:  # the process is ending
                    self.stream.write(line + "\n")
                    self.stream.flush()
                    return
                self._start()
            self.queue.put_nowait(line)
        except Exception:
            self.handleError(record)

    def _start(self) -> None:
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.queue = lines
        self._writer = _LineWriter(lines, self)
        self._writer.start()

    def stop(self) -> None:
        """Write out the queued lines and end the thread; later lines are written at once."""
        self.acquire()  # no line in between, nor written before those queued
        try:
            writer, self._writer = self._writer, None
            self._stopped = True
            if writer is not None:
                writer.stop()  # queues the end after every line, and waits for the thread
                self.stream.flush()  # the last line was written with the end still queued
        finally:
            self.release()

    def _forget_parents_thread(self) -> None:
        # In a forked child, the parent's thread does not exist, and the lines in its queue
        # are the parent's to write: the child's first line starts a thread of its own.
        # (logging renews the handler's lock itself.)
        self._writer = None

    def close(self) -> None:
        self.stop()
        super().close()


class _LineWriter(logging.handlers.QueueListener):
    """The thread that writes a QueuedStreamHandler's lines to its stream."""

    def __init__(self, lines: "queue.SimpleQueue[str]", handler: QueuedStreamHandler) -> None:
        super().__init__(lines)
        self._lines = lines
        self._handler = handler
        self._stopping = threading.Event()
        self._unflushed = False  # lines written to the stream since its last flush

    def dequeue(self, block: bool) -> Any:
        try:
            return self._lines.get_nowait()
        except queue.Empty:
            pass
        if self._unflushed:
            # Run dry: write out the lines so far, then let the next ones gather. Busy, this
            # thread wakes once per BATCH_SECONDS; a line wakes it only after a quiet spell.
            self._flush()
            self._stopping.wait(BATCH_SECONDS)
        return self._lines.get()  # the first line after a quiet spell is written at once

    def enqueue_sentinel(self) -> None:
        self._stopping.set()  # so that stop() does not wait out BATCH_SECONDS
        super().enqueue_sentinel()

    def handle(self, record: Any) -> None:
        # `record` is a line, formatted by the handler: it only needs writing.
        try:
            self._handler.stream.write(record + "\n")
            self._unflushed = True
        except Exception:
            self._handler.handleError(logging.makeLogRecord({"msg": record}))

    def _flush(self) -> None:
        self._unflushed = False
        try:
            self._handler.stream.flush()
        except Exception:
            self._handler.handleError(logging.makeLogRecord({"msg": "(flushing)"}))


def _after_fork_in_child() -> None:
    for handler in list(_handlers):
        handler._forget_parents_thread()


os.register_at_fork(after_in_child=_after_fork_in_child)


def stop_writers() -> None:
    """Write out every line queued in this process and end the threads: see the module's
    docstring."""
    for handler in list(_handlers):
        handler.stop()
