"""The filters of `chatapi serve`'s logging: a warning repeated during an outage is written
once in a while with a count, and a client that left before its answer is one line."""

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import uvicorn.protocols

from api.request_log import is_closed_connection

REPEAT_INTERVAL_SECONDS = 10.0
MAX_TRACKED_MESSAGES = 1000
UVICORN_PROTOCOLS = str(Path(uvicorn.protocols.__file__).parent)


class RepeatLimit(logging.Filter):
    """Lets a message through at most once per `interval` seconds; the next one let through
    says how many were held back since the last. Errors always pass.

    A message is a logger and a message template, whatever its arguments: "database
    unavailable: %s" repeats whichever way the driver words the failure.
    """

    def __init__(
        self,
        interval: float = REPEAT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()  # handlers filter before they take their own lock
        # (logger, template): when it was last let through, and how many were held back since.
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            shown, held = self._seen.get(key, (-math.inf, 0))
            if now - shown < self._interval:
                self._seen[key] = (shown, held + 1)
                return False
            if len(self._seen) >= MAX_TRACKED_MESSAGES:
                self._seen.clear()  # templates are few; formatted messages need not be
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this suppressed in {now - shown:.0f} s]"
        return True


class ClosedConnections(logging.Filter):
    """uvicorn's traceback for an answer it failed to send because the client had closed the
    connection (it pipelined requests, then left) as one line: the client's doing, not a bug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if (
            exc is not None
            and str(record.msg).startswith("Exception in ASGI application")
            and is_closed_connection(exc)
            and _raised_by_uvicorns_send(exc)
        ):
            record.msg = "client closed the connection before its answer was sent"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _raised_by_uvicorns_send(exc: BaseException) -> bool:
    """Whether `exc` came out of uvicorn's ASGI `send`, not out of the app's own code."""
    frames = traceback.walk_tb(exc.__traceback__)
    return any(
        frame.f_code.co_name == "send" and UVICORN_PROTOCOLS in frame.f_code.co_filename
        for frame, _ in frames
    )
