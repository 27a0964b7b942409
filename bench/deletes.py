"""The delete scenarios (issue 23): what deleting a chat costs its request, and what purging
its messages afterwards costs everyone else.

1. The request. A service with JOBS=worker and no worker running, so that no purge starts:
   `DELETE` of the big chat, its tombstone then undone by SQL (`deleted_at` cleared, its
   read-model rows put back as they were, its purge job removed), in turn with `DELETE`s of
   3-message chats of the pool; the same request path every time, each request timed by the
   client, one at a time, on a fresh connection.
2. The purge, as the service does it by default (JOBS=in-process: a thread of the server, at
   its default JOB_BATCH_SIZE and JOB_BATCH_PAUSE): GETs of other chats (get.lua) just
   before, while the big chat is deleted and purged, and just after; the p99 while it ran
   against the mean of the two others. Again at the settings in TUNINGS, each on a big
   chat of its own, when that misses its target (or as BENCH_PURGE_TUNINGS says).
3. The mixed load: MIXED_CONNECTIONS connections of mixed_statuses.lua for MIXED_SECONDS,
   a new big chat deleted MIXED_DELETE_AT_S in, the service at its defaults; every
   response counted by status, the service's logged 503s by their detail.

For each stretch, what PostgreSQL's log says (bench/pglog.py) and, while a purge runs, what
its backends wait on (pg_stat_activity, sampled).
"""

import statistics
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from bench import machine, pglog, server, wrk
from bench.config import BenchConfig, BenchError, Pinning
from bench.dataset import BIG_CHAT, BIG_CHAT_MESSAGES, POOL_MESSAGES, add_big_chat
from bench.pglog import Window
from bench.postgres import LOG_SETTINGS, settings
from bench.procstat import CpuMeter
from bench.replicas import latency
from bench.results import DeleteLatency, Deletes, MixedDelete, Purge, Waits
from bench.scenarios import ALL_CHATS, DeletePool, check, log
from bench.server import Server
from bench.targets import (
    MIXED_CONNECTIONS,
    MIXED_DELETE_AT_S,
    MIXED_SECONDS,
    purge_met,
    server_errors,
    statuses,
)
from bench.wrk import WrkSetup
from infrastructure.jobs import PURGE_CHAT
from infrastructure.read_models import chat_member_views, chat_views, member_event_views
from infrastructure.settings import Settings
from infrastructure.tables import chats, jobs, messages

ROOT = Path(__file__).resolve().parent.parent
WARM_ROUNDS = 3  # untimed rounds before the timed DELETEs
LEAD_S = 1.0  # the GET run is under way this long before the big chat's DELETE is sent
TAIL_S = 0.5  # and goes on this long after its purge finished
POLL_S = 0.25  # between looks at the purge's job
PURGE_LIMIT_S = 300.0  # a purge not finished by then is reported unfinished
WAIT_SAMPLE_S = 0.1  # between looks at pg_stat_activity
# (JOB_BATCH_SIZE, JOB_BATCH_PAUSE) measured beside the defaults (BENCH_PURGE_TUNINGS):
# smaller steps, larger steps, longer pauses. (Measured on 2026-12-07 with the reads on the
# event loop: 5000 2.9x, 2000 with 0.05 s 2.2x, 1000 with 0.05 s 1.6x, 500 1.0x.)
TUNINGS = ((250, 0.02), (1000, 0.02), (500, 0.05))
# The service's settings that decide who purges and how: at their defaults unless given.
JOB_SETTINGS = ("JOBS", "JOB_BATCH_SIZE", "JOB_BATCH_PAUSE", "JOB_POLL_INTERVAL")
# A deleted chat's read-model rows, which its DELETE removes and the undo puts back.
VIEWS = (chat_views, chat_member_views, member_event_views)
BUSY_MARK = "503: "  # how the service logs a 503 (api/admission.py), its detail after it
WAITING = text(
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'running') AS wait, count(*) "
    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active' "
    "AND pid <> pg_backend_pid() GROUP BY 1"
)


def default(name: str) -> Any:
    return Settings.model_fields[name].default


def job_of(connection: Connection, chat_id: int) -> Any:
    """The chat's purge job (id, done), or None."""
    return connection.execute(
        select(jobs.c.id, jobs.c.done).where(jobs.c.kind == PURGE_CHAT, jobs.c.chat_id == chat_id)
    ).first()


def message_count(engine: Engine, chat_id: int) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count()).select_from(messages).where(messages.c.chat_id == chat_id)
            )
            or 0
        )


def views_of(engine: Engine, chat_id: int) -> dict[str, list[dict[str, Any]]]:
    """The chat's rows in the read models, as they are: what the undo puts back."""
    with engine.connect() as connection:
        return {
            table.name: [
                dict(row)
                for row in connection.execute(
                    select(table).where(table.c.chat_id == chat_id)
                ).mappings()
            ]
            for table in VIEWS
        }


def undo_delete(engine: Engine, chat_id: int, views: dict[str, list[dict[str, Any]]]) -> None:
    """The chat live again, as before its DELETE: no tombstone, its read-model rows back,
    its purge job gone, before any of the job was done."""
    with engine.begin() as connection:
        job = job_of(connection, chat_id)
        if job is None or job.done:
            raise BenchError(
                f"chat {chat_id}: no purge job waiting after its DELETE ({job}): the service "
                "must run with JOBS=worker and no worker"
            )
        connection.execute(delete(jobs).where(jobs.c.id == job.id))
        connection.execute(update(chats).where(chats.c.id == chat_id).values(deleted_at=None))
        for table in VIEWS:
            if views[table.name]:
                connection.execute(insert(table), views[table.name])


class WaitSampler:
    """Samples what PostgreSQL's client backends wait on, in a thread, until stopped."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._seen: Counter[str] = Counter()
        self._samples = self._active = 0
        self._thread = threading.Thread(target=self._run, name="wait-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        options = {"isolation_level": "AUTOCOMMIT"}
        with self._engine.connect().execution_options(**options) as connection:
            while not self._stop.wait(WAIT_SAMPLE_S):
                for wait, count in connection.execute(WAITING).tuples():
                    self._seen[wait] += count
                    self._active += count
                self._samples += 1

    def stop(self) -> Waits:
        self._stop.set()
        self._thread.join(timeout=10)
        return Waits(self._samples, self._active, dict(self._seen.most_common()))


@dataclass
class Watched:
    """How a purge went, as its job row showed it."""

    finished: bool
    seconds: float  # from the start of the watch until the job was gone, or the watch ended
    progress: list[tuple[float, int]]  # (seconds, seq purged to), each change


def watch_purge(engine: Engine, chat_id: int, since: float, until: float) -> Watched:
    """Looks at the chat's purge job every POLL_S from `since` (time.monotonic()) until the
    job is gone or `until` has passed."""
    progress: list[tuple[float, int]] = []
    while True:
        with engine.connect() as connection:
            job = job_of(connection, chat_id)
        now = time.monotonic()
        if job is None:
            return Watched(True, now - since, progress)
        if not progress or progress[-1][1] != job.done:
            progress.append((round(now - since, 2), int(job.done)))
        if now >= until:
            return Watched(False, now - since, progress)
        time.sleep(POLL_S)


def wait_for_purges(engine: Engine, limit_s: float = PURGE_LIMIT_S) -> float:
    """Until no chat's purge is waiting (those that earlier runs left are done first);
    returns the seconds waited."""
    started = time.monotonic()
    deadline = started + limit_s
    while True:
        with engine.connect() as connection:
            left = connection.scalar(
                select(func.count()).select_from(jobs).where(jobs.c.kind == PURGE_CHAT)
            )
        if not left:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise BenchError(f"{left} chat purges still waiting after {limit_s:.0f} s")
        time.sleep(POLL_S)


def busy_lines(log_file: Path, offset: int) -> dict[str, int]:
    """The service's logged 503s from `offset` on, by their detail."""
    with log_file.open("rb") as lines:
        lines.seek(offset)
        found = Counter(
            line.split(BUSY_MARK, 1)[1].strip()
            for line in lines.read().decode(errors="replace").splitlines()
            if BUSY_MARK in line
        )
    return dict(found.most_common())


def tuning_label(batch_size: int, batch_pause: float) -> str:
    return f"JOB_BATCH_SIZE={batch_size}, JOB_BATCH_PAUSE={batch_pause:g}"


@dataclass
class DeleteBench:
    """What the delete scenarios need of the run: its config, wrk, PostgreSQL and its log,
    CPUs, files."""

    config: BenchConfig
    setup: WrkSetup
    database_url: str
    postmaster_pid: int
    pinning: Pinning
    pool: DeletePool  # its engine, and the small chats the DELETEs are timed on
    work: Path
    postgres_log: Path

    def __post_init__(self) -> None:
        self.windows: list[Window] = []
        self.refill_s: list[float] = []

    @property
    def engine(self) -> Engine:
        return self.pool.engine

    def run(self) -> Deletes:
        started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        began = time.monotonic()
        code = machine.code_version(ROOT)
        latency = self._latency()
        purge = self._purge(BIG_CHAT)
        tunings = []
        tune = self.config.purge_tunings
        if tune == "always" or (tune == "missed" and not purge_met(purge)):
            log(f"deletes: the purge again at other settings (BENCH_PURGE_TUNINGS={tune})")
            tunings = [self._purge(self._big_chat(), tuning) for tuning in TUNINGS]
        mixed = self._mixed(self._big_chat())
        events = pglog.read(self.postgres_log)
        deletes = Deletes(
            started_at=started_at,
            code=code,
            alone=self.config.only == "delete",
            latency=latency,
            purge=purge,
            tunings=tunings,
            mixed=mixed,
            log=[pglog.during(events, window) for window in self.windows],
            log_settings=settings(self.engine, tuple(LOG_SETTINGS)),
            refill_s=self.refill_s,
            total_s=time.monotonic() - began,
        )
        log(f"deletes: done in {deletes.total_s:.0f} s")
        return deletes

    def _service(self, stack: ExitStack, settings: dict[str, str]) -> Server:
        service = server.start_service(
            self.database_url, self.pinning.server, self.work, settings=settings, unset=JOB_SETTINGS
        )
        named = ", ".join(f"{name}={value}" for name, value in settings.items())
        service.name += f" ({named or 'defaults'})"
        stack.callback(service.stop)

        def tail_on_failure(kind: type[BaseException] | None, *rest: object) -> None:
            if kind is not None:
                print(f"--- {service.name} log (tail) ---\n{service.log_tail()}", file=sys.stderr)

        stack.push(tail_on_failure)
        return service

    def _big_chat(self) -> int:
        log(f"deletes: loading a chat of {BIG_CHAT_MESSAGES:,} messages")
        chat_id, seconds = add_big_chat(self.engine)
        self.refill_s.append(seconds)
        log(f"deletes:   chat {chat_id}, in {seconds:.1f} s")
        return chat_id

    def _window(self, name: str, start: datetime) -> None:
        self.windows.append(Window(name, start, pglog.now()))

    def _latency(self) -> DeleteLatency:
        """The big chat's DELETE, undone each time, in turn with small chats'."""
        samples = self.config.delete_samples
        views = views_of(self.engine, BIG_CHAT)
        big_messages = message_count(self.engine, BIG_CHAT)
        small = self.pool.take(WARM_ROUNDS + samples)
        timed: dict[str, list[float]] = {"big": [], "small": []}
        answered: Counter[str] = Counter()
        with ExitStack() as stack:
            service = self._service(stack, {"JOBS": "worker"})
            start = pglog.now()
            for index, small_chat in enumerate(small):
                turn = [("big", BIG_CHAT), ("small", small_chat)]
                for side, chat_id in turn if index % 2 == 0 else reversed(turn):
                    response = server.request(service.url, "DELETE", f"/chats/{chat_id}")
                    if side == "big":
                        undo_delete(self.engine, BIG_CHAT, views)
                    if index >= WARM_ROUNDS:
                        timed[side].append(response.seconds)
                        answered[f"{side} {response.status}"] += 1
            self._window("DELETEs one at a time (JOBS=worker, no worker)", start)
        if message_count(self.engine, BIG_CHAT) != big_messages:
            raise BenchError(f"chat {BIG_CHAT} lost messages while no worker ran")
        found = DeleteLatency(
            big_chat=BIG_CHAT,
            big_messages=big_messages,
            small_messages=POOL_MESSAGES,
            big=latency(timed["big"]),
            small=latency(timed["small"]),
            big_ms=[round(1000 * s, 3) for s in timed["big"]],
            small_ms=[round(1000 * s, 3) for s in timed["small"]],
            statuses=dict(answered),
        )
        log(
            f"deletes: DELETE p50 {found.big.p50_ms:.2f} ms for the {big_messages:,}-message "
            f"chat, {found.small.p50_ms:.2f} ms for {POOL_MESSAGES}-message ones "
            f"({samples} each; statuses {dict(answered)})"
        )
        return found

    def _purge(self, chat_id: int, tuning: tuple[int, float] | None = None) -> Purge:
        """The chat deleted and purged by the service's own thread, under a GET load."""
        batch_size, batch_pause = tuning or (default("job_batch_size"), default("job_batch_pause"))
        named = tuning_label(batch_size, batch_pause)
        settings = {"JOB_BATCH_SIZE": str(batch_size), "JOB_BATCH_PAUSE": str(batch_pause)}
        args, seconds = [*ALL_CHATS, "20"], self.config.delete_window
        with ExitStack() as stack:
            service = self._service(stack, settings if tuning else {})
            wait_for_purges(self.engine)
            messages = message_count(self.engine, chat_id)
            check("GETs (warm-up)", wrk.run(self.setup, service.url, "get.lua", args, 3))
            start = pglog.now()
            before = wrk.run(self.setup, service.url, "get.lua", args, seconds)
            check("GETs before the purge", before)
            self._window(f"GETs before the purge ({named})", start)
            meter = CpuMeter(service.pid, self.postmaster_pid)
            at_start = meter.snapshot()
            start = pglog.now()
            sampler = WaitSampler(self.engine)
            load = wrk.Background(self.setup, service.url, "get.lua", args, int(PURGE_LIMIT_S) + 60)
            try:
                time.sleep(LEAD_S)
                response = server.request(service.url, "DELETE", f"/chats/{chat_id}")
                answered = time.monotonic()
                watched = Watched(False, 0.0, [])
                if response.status == 204:
                    watched = watch_purge(self.engine, chat_id, answered, answered + PURGE_LIMIT_S)
                time.sleep(TAIL_S)
                during = load.stop()
            except BaseException:
                load.kill()
                raise
            finally:
                waits = sampler.stop()
            cpu = meter.usage(at_start, during.wrk_cpu_s)
            self._window(f"GETs while the purge ran ({named})", start)
            check("GETs while the purge ran", during)
            start = pglog.now()
            after = wrk.run(self.setup, service.url, "get.lua", args, seconds)
            check("GETs after the purge", after)
            self._window(f"GETs after the purge ({named})", start)
        normal = statistics.mean([before.p99_ms, after.p99_ms])
        purge = Purge(
            runner=str(default("jobs")),
            batch_size=batch_size,
            batch_pause=batch_pause,
            chat_id=chat_id,
            messages=messages,
            delete_status=response.status,
            delete_s=response.seconds,
            finished=watched.finished,
            purge_s=watched.seconds,
            rows_per_s=messages / watched.seconds if watched.finished else 0.0,
            before=before,
            during=during,
            after=after,
            p99_ratio=during.p99_ms / normal,
            cpu=cpu,
            waits=waits,
            progress=watched.progress,
        )
        log(
            f"deletes: purge of {messages:,} messages ({named}): DELETE {response.status} in "
            f"{response.seconds * 1000:.1f} ms; "
            + (f"purged in {purge.purge_s:.1f} s" if purge.finished else "NOT purged")
            + f"; GET p99 {before.p99_ms:.2f} / {during.p99_ms:.2f} / {after.p99_ms:.2f} ms "
            f"(before / during / after): {purge.p99_ratio:.2f}x"
        )
        return purge

    def _mixed(self, chat_id: int) -> MixedDelete:
        """The mixed load at the service's defaults, the chat deleted part way through."""
        setup = replace(self.setup, connections=MIXED_CONNECTIONS)
        script = "mixed_statuses.lua"
        with ExitStack() as stack:
            service = self._service(stack, {})
            wait_for_purges(self.engine)
            messages = message_count(self.engine, chat_id)
            wrk.run(setup, service.url, script, ALL_CHATS, self.config.warmup)  # warm-up
            offset = service.log_file.stat().st_size
            meter = CpuMeter(service.pid, self.postmaster_pid)
            at_start = meter.snapshot()
            start = pglog.now()
            sampler = WaitSampler(self.engine)
            load = wrk.Background(setup, service.url, script, ALL_CHATS, MIXED_SECONDS)
            began = time.monotonic()
            try:
                time.sleep(MIXED_DELETE_AT_S)
                deleted_at = pglog.now()
                response = server.request(service.url, "DELETE", f"/chats/{chat_id}")
                answered = time.monotonic()
                watched = Watched(False, 0.0, [])
                if response.status == 204:
                    end = began + MIXED_SECONDS
                    watched = watch_purge(self.engine, chat_id, answered, end)
                result = load.result(timeout_s=MIXED_SECONDS + 60)
            except BaseException:
                load.kill()
                raise
            finally:
                waits = sampler.stop()
            cpu = meter.usage(at_start, result.wrk_cpu_s)
            self.windows.append(Window("mixed load, before the DELETE", start, deleted_at))
            self._window("mixed load, from the DELETE on", deleted_at)
            busy = busy_lines(service.log_file, offset)
            purge_s: float | None = watched.seconds if watched.finished else None
            if response.status == 204 and not watched.finished:
                start = pglog.now()
                rest = watch_purge(self.engine, chat_id, answered, answered + PURGE_LIMIT_S)
                purge_s = rest.seconds if rest.finished else None
                self._window("the purge's rest, after the mixed load", start)
        mixed = MixedDelete(
            seconds=MIXED_SECONDS,
            connections=MIXED_CONNECTIONS,
            delete_after_s=round(answered - response.seconds - began, 2),
            chat_id=chat_id,
            messages=messages,
            result=result,
            delete_status=response.status,
            delete_s=response.seconds,
            purged_after_s=watched.seconds if watched.finished else None,
            purge_s=purge_s,
            cpu=cpu,
            waits=waits,
            busy=busy,
        )
        log(
            f"deletes: mixed load, {result.requests:,} requests, statuses "
            f"{statuses(result)}, {server_errors(result)} 5xx, wrk errors {result.errors}; "
            f"DELETE {response.status} in {response.seconds * 1000:.1f} ms; purge "
            + (f"{purge_s:.1f} s" if purge_s is not None else "not finished")
        )
        return mixed
