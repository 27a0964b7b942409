"""`chatapi worker`: runs the background jobs (infrastructure/jobs.py) until SIGTERM or Ctrl-C;
`chatapi worker --check`, its health check; `chatapi jobs`, what is waiting.

Its progress goes to the log (stderr) and, at most once a second, to a status file
(WORKER_STATUS_FILE) that `--check` reads: healthy while the loop turned lately.
"""

import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from infrastructure.container import Container
from infrastructure.job_runner import RunnerStatus
from infrastructure.jobs import backlog
from infrastructure.settings import Settings

log = logging.getLogger("chatapi.jobs")

STATUS_EVERY = 1.0  # seconds between writes of the status file
STALE_AFTER_POLLS = 5  # a status older than this many poll intervals (at least 30 s) is stale
STALE_AT_LEAST = 30.0


def run_worker(container: Container) -> int:
    """The worker's loop, in this thread, until a signal stops it after the step in flight."""
    settings = container.settings()
    status_file = Path(settings.worker_status_file)
    written_at = 0.0

    def on_turn(status: RunnerStatus) -> None:
        nonlocal written_at
        if time.monotonic() - written_at >= STATUS_EVERY:
            written_at = time.monotonic()
            write_status(status_file, status)

    runner = container.job_runner(on_turn=on_turn)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("stopping after the step in flight (%s)", signal.Signals(signum).name)
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    log.info(
        "worker started: %d rows a step, %.3f s between a purge's steps",
        settings.job_batch_size,
        settings.job_batch_pause,
    )
    runner.run()
    write_status(status_file, runner.status)
    done = runner.status
    log.info("worker stopped: %d steps, %d rows deleted", done.steps, done.deleted)
    return 0


def write_status(path: Path, status: RunnerStatus) -> None:
    """Replace the status file whole (a reader never sees half of one); a status that cannot
    be written is logged, and never stops the jobs."""
    document = json.dumps({"pid": os.getpid(), **asdict(status)})
    try:
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as temporary:
            temporary.write(document)
        os.replace(temporary.name, path)
    except OSError as exc:
        log.warning("cannot write the worker's status to %s: %s", path, exc)


def is_healthy(settings: Settings) -> bool:
    """Whether a worker wrote its status lately: its loop turns at least every poll interval
    (and after every step)."""
    try:
        status = json.loads(Path(settings.worker_status_file).read_text())
        beat_at = float(status["beat_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    stale_after = max(STALE_AT_LEAST, STALE_AFTER_POLLS * settings.job_poll_interval)
    return time.time() - beat_at <= stale_after


def pending_jobs(container: Container) -> list[dict[str, object]]:
    """Every job waiting, due first first, with its progress."""
    with container.write_engine().connect() as connection:
        return backlog(connection)
