"""The filters of `chatapi serve`'s logging (cli/log_filters.py), on records made here."""

import logging
import sys
from collections.abc import Iterator

import pytest

from cli.log_filters import ClosedConnections, RepeatLimit
from cli.serve import LOG_CONFIG


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines(clock: Clock) -> Iterator[Lines]:
    """What a logger named "chatapi.test" writes through a RepeatLimit as `chatapi serve`'s."""
    handler = Lines()
    handler.addFilter(RepeatLimit(clock=clock))
    logger = logging.getLogger("chatapi.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def test_a_thousand_warnings_in_a_second_are_one_line_then_a_count(
    lines: Lines, clock: Clock
) -> None:
    log = logging.getLogger("chatapi.test")
    for n in range(1000):
        clock.now = n / 1000
        log.warning("database unavailable: %s", f"attempt {n}")
    assert lines.lines == ["database unavailable: attempt 0"]

    clock.now = 11.0  # the outage goes on, past the interval
    log.warning("database unavailable: %s", "attempt 1000")
    assert lines.lines[1:] == [
        "database unavailable: attempt 1000 [999 more like this suppressed in 11 s]"
    ]


def test_a_steady_stream_is_a_line_per_interval(lines: Lines, clock: Clock) -> None:
    log = logging.getLogger("chatapi.test")
    for n in range(3000):  # 30 s, 100 a second
        clock.now = n / 100
        log.warning("cannot send hints, will retry: %s", "refused")
    assert len(lines.lines) == 3, lines.lines
    assert lines.lines[1].endswith("[999 more like this suppressed in 10 s]"), lines.lines


def test_other_messages_and_errors_are_not_held_back(lines: Lines, clock: Clock) -> None:
    log = logging.getLogger("chatapi.test")
    log.warning("database unavailable: %s", "x")
    log.warning("database unavailable: %s", "x")
    log.warning("hint listener lost its connection, reconnecting; streams poll")
    log.info("purged %d expired idempotency keys", 3)
    log.error("unexpected error, request_id %s", "a")
    log.error("unexpected error, request_id %s", "b")
    assert lines.lines == [
        "database unavailable: x",
        "hint listener lost its connection, reconnecting; streams poll",
        "purged 3 expired idempotency keys",
        "unexpected error, request_id a",
        "unexpected error, request_id b",
    ]


def test_serve_limits_its_stderr_lines_but_never_the_request_lines() -> None:
    assert LOG_CONFIG["handlers"]["default"]["filters"] == ["repeats"]
    assert "filters" not in LOG_CONFIG["handlers"]["requests"]
    assert LOG_CONFIG["filters"]["repeats"] == {"()": "cli.log_filters.RepeatLimit"}


def uvicorn_record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except type(exc):
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application\n", (), exc_info
    )


def test_a_bug_reported_by_uvicorn_keeps_its_traceback() -> None:
    for exc in (RuntimeError("a bug"), ConnectionResetError("from our own code")):
        record = uvicorn_record(exc)
        assert ClosedConnections().filter(record)
        assert record.exc_info is not None
        assert record.levelno == logging.ERROR
