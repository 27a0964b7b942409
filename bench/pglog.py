"""What PostgreSQL's log says about a stretch of the run: the checkpoints, lock waits, slow
statements, autovacuums and errors that overlapped it.

The bench's cluster logs them (bench/postgres.py LOG_SETTINGS) with lines that begin
`2026-12-07 10:00:00.123 UTC [4242] LOG:  `; a line without that prefix continues the
message before it (an autovacuum's report, a statement's text over several lines).
"""

import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.results import LogEvent, LogWindow

LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[(?P<pid>\d+)\] "
    r"(?P<level>[A-Z]+):  (?P<message>.*)$"
)
AT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
MILLISECONDS = re.compile(r"after ([0-9.]+) ms")
DURATION = re.compile(r"^duration: ([0-9.]+) ms")
CHECKPOINT_TOTAL = re.compile(r"total=([0-9.]+) s")
ELAPSED = re.compile(r"elapsed: ([0-9.]+) s")
# How a message is named, by how it begins; ERROR, FATAL and PANIC lines are "error".
KINDS = (
    ("checkpoint complete:", "checkpoint"),
    ("duration:", "slow statement"),
    ("automatic vacuum", "autovacuum"),
    ("automatic analyze", "autoanalyze"),
)
ERROR_LEVELS = ("ERROR", "FATAL", "PANIC")
# What a DETAIL or STATEMENT line adds to the event before it (of the same process).
ADDED_LEVELS = ("DETAIL", "STATEMENT")
# Autovacuums and autoanalyzes shorter than this are left out: the catalogs' and small
# tables' take milliseconds, and would crowd out what could have held a request up.
HOUSEKEEPING = ("autovacuum", "autoanalyze")
HOUSEKEEPING_MS = 100.0
# What a request may have waited for: LogWindow.longest_ms is the longest of these.
TIMED_WAITS = ("slow statement", "lock acquired")
TEXT_CHARS = 300  # of an event's text kept
WHOLE_RUN_KEPT = 100  # the whole run's longest events kept in the results (all are counted)
KEPT_AS = "chatapi-bench-postgres.log"  # the last run's log, kept in the temporary directory


@dataclass(frozen=True)
class Window:
    """A stretch of the run, by the harness's clock (UTC), as PostgreSQL's log is stamped."""

    name: str
    start: datetime
    end: datetime


def now() -> datetime:
    return datetime.now(UTC)


def _kind(level: str, message: str) -> str | None:
    if level in ERROR_LEVELS:
        return "error"
    if message.startswith("process ") and " still waiting for " in message:
        return "lock wait"
    if message.startswith("process ") and " acquired " in message:
        return "lock acquired"
    for start, kind in KINDS:
        if message.startswith(start):
            return kind
    return None  # start-up, shutdown and the like


def _ms(kind: str, text: str) -> float:
    """How long the event lasted, up to when it was logged (0: a moment)."""
    pattern = {
        "checkpoint": CHECKPOINT_TOTAL,
        "autovacuum": ELAPSED,
        "autoanalyze": ELAPSED,
        "slow statement": DURATION,
        "lock acquired": MILLISECONDS,
    }.get(kind)
    found = pattern.search(text) if pattern else None
    if found is None:
        return 0.0
    seconds = pattern in (CHECKPOINT_TOTAL, ELAPSED)
    return float(found.group(1)) * (1000 if seconds else 1)


def parse(text: str) -> list[LogEvent]:
    """The events of a log, in its order; each with what its continuation lines add."""
    events: list[LogEvent] = []
    last_by_pid: dict[str, LogEvent] = {}
    last: LogEvent | None = None  # the event of the last prefixed line, if it was one
    reason = ""  # the reason the last "checkpoint starting" gave
    for line in text.splitlines():
        found = LINE.match(line)
        if found is None:
            if last is not None:
                last.text += " " + line.strip()
            continue
        level, message, pid = found["level"], found["message"], found["pid"]
        if level in ADDED_LEVELS:
            before = last_by_pid.get(pid)
            if before is not None:
                before.text += f" {level}: {message}"
            last = None
            continue
        if message.startswith("checkpoint starting:"):
            reason = message.removeprefix("checkpoint starting:").strip()
        kind = _kind(level, message)
        if kind is None:
            last = None
            continue
        if kind == "checkpoint" and reason:
            message = f"{message} (started by: {reason})"
        last = LogEvent(at=found["at"], kind=kind, ms=0.0, text=message, pid=int(pid))
        events.append(last)
        last_by_pid[pid] = last
    for event in events:
        event.ms = _ms(event.kind, event.text)
        event.text = event.text[:TEXT_CHARS]
    return [e for e in events if e.kind not in HOUSEKEEPING or e.ms >= HOUSEKEEPING_MS]


def keep(log_file: Path) -> None:
    """A copy of the run's log where it outlives the run, in place of the last run's."""
    kept = Path(tempfile.gettempdir()) / KEPT_AS
    try:
        shutil.copyfile(log_file, kept)
    except OSError:
        return
    print(f"bench: PostgreSQL's log of the run: {kept}", flush=True)


def read(log_file: Path) -> list[LogEvent]:
    try:
        return parse(log_file.read_text(errors="replace"))
    except OSError:
        return []


def _span(event: LogEvent) -> tuple[datetime, datetime]:
    """From when the event began (its duration before it was logged) to when it was logged."""
    end = datetime.strptime(event.at, AT_FORMAT).replace(tzinfo=UTC)
    return end - timedelta(milliseconds=event.ms), end


def longest(events: list[LogEvent], count: int) -> list[LogEvent]:
    """The `count` longest of the events, in the log's order."""
    chosen = {id(e) for e in sorted(events, key=lambda e: e.ms, reverse=True)[:count]}
    return [event for event in events if id(event) in chosen]


def during(events: list[LogEvent], window: Window, keep: int | None = None) -> LogWindow:
    """The events that overlapped the window, counted by kind, and kept: all of them, or
    the `keep` longest."""
    inside = []
    for event in events:
        began, logged = _span(event)
        if began <= window.end and logged >= window.start:
            inside.append(event)
    timed = [e.ms for e in inside if e.kind in TIMED_WAITS]
    return LogWindow(
        name=window.name,
        started_at=window.start.strftime(AT_FORMAT)[:-3],
        ended_at=window.end.strftime(AT_FORMAT)[:-3],
        counts=dict(Counter(event.kind for event in inside)),
        events=inside if keep is None else longest(inside, keep),
        longest_ms=max(timed, default=0.0),
    )
