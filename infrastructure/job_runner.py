"""Runs background jobs (infrastructure/jobs.py) step after step until told to stop: the loop of
`chatapi worker`, and of the thread the server runs them in when JOBS=in-process.

Stopping is checked between steps only, so a step in flight commits (or fails and rolls back)
before the loop ends: SIGTERM never leaves a batch half-done. Between the steps of a chat's
purge the loop pauses JOB_BATCH_PAUSE seconds, leaving the database to the requests.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from infrastructure.clock import Clock
from infrastructure.jobs import JobSettings, Step, ensure_periodic_jobs, run_step

log = logging.getLogger("chatapi.jobs")

PROGRESS_EVERY = 5.0  # seconds between progress lines of one chat's purge


@dataclass
class RunnerStatus:
    """What the runner has done: the worker's status file and its health check read it."""

    started_at: float = field(default_factory=time.time)
    beat_at: float = field(default_factory=time.time)  # the loop's last turn
    steps: int = 0
    deleted: int = 0
    chats_purged: int = 0
    current: dict[str, object] | None = None  # the job of the last step, while unfinished
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Pacing:
    poll_interval: float  # seconds between looks for a due job when there was none
    batch_pause: float  # seconds between two steps of one chat's purge


class JobRunner:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        settings: JobSettings,
        pacing: Pacing,
        on_turn: Callable[[RunnerStatus], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self._pacing = pacing
        self._on_turn = on_turn
        self._stop = threading.Event()
        self._logged_at: dict[int, float] = {}
        self.status = RunnerStatus()

    def stop(self) -> None:
        """Ask the loop to end after the step in flight; safe from a signal handler."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Until stopped: make sure the periodic jobs exist, then step through the jobs."""
        while not self._stop.is_set() and not self._ready():
            self._stop.wait(self._pacing.poll_interval)
        while not self._stop.is_set():
            step = self._step()
            self._turned()
            if step is None:
                self._stop.wait(self._pacing.poll_interval)
            elif not step.finished:
                self._stop.wait(self._pacing.batch_pause)

    def run_until_idle(self) -> int:
        """Step until no job is due; how many steps ran. For tests and `chatapi jobs run`."""
        self._ready()
        steps = 0
        while self._step() is not None:
            steps += 1
        return steps

    def _ready(self) -> bool:
        try:
            with self._engine.begin() as connection:
                ensure_periodic_jobs(connection, self._clock())
        except (DBAPIError, PoolTimeout) as exc:
            self._failed(exc)
            return False
        return True

    def _step(self) -> Step | None:
        try:
            with self._engine.begin() as connection:
                step = run_step(connection, self._clock(), self._settings)
        except (DBAPIError, PoolTimeout) as exc:  # the database is away: try again later
            self._failed(exc)
            return None
        if step is not None:
            self._did(step)
        return step

    def _did(self, step: Step) -> None:
        status = self.status
        status.steps += 1
        status.deleted += step.deleted
        status.last_error = None
        status.current = None if step.finished else {"kind": step.kind, "chat_id": step.chat_id}
        if step.chat_id is None:
            if step.deleted:
                log.info("%s: %d deleted", step.kind, step.deleted)
            return
        if step.finished:
            status.chats_purged += 1
            self._logged_at.pop(step.job_id, None)
            log.info("chat %d purged (its messages to seq %d)", step.chat_id, step.done)
            return
        now = time.monotonic()
        if now - self._logged_at.setdefault(step.job_id, now) >= PROGRESS_EVERY:
            self._logged_at[step.job_id] = now
            log.info("chat %d: messages purged to seq %d", step.chat_id, step.done)

    def _failed(self, exc: Exception) -> None:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.status.last_error = first_line
        log.warning("background jobs: the database failed: %s", first_line)

    def _turned(self) -> None:
        self.status.beat_at = time.time()
        if self._on_turn is not None:
            self._on_turn(self.status)


def start_in_thread(runner: JobRunner) -> threading.Thread:
    """Run the jobs in a thread of this process (JOBS=in-process). A daemon thread: a step
    stuck on the database never keeps the process from exiting; its transaction then rolls
    back with the connection."""
    thread = threading.Thread(target=runner.run, name="chatapi-jobs", daemon=True)
    thread.start()
    return thread
