"""The measurements: each drives the server with wrk and returns what it saw.

Every wrk run is checked: a single error (a refused connection, a timeout, a response of
400 or more) fails the whole bench run, since its numbers would not mean what they say.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from bench import procstat, wrk
from bench.config import BenchConfig, BenchError
from bench.dataset import (
    CHAT_COUNT,
    CHAT_OF_SIZE,
    Dataset,
    extend_pool,
)
from bench.procstat import CpuMeter
from bench.results import Measurement, Soak
from bench.server import Server
from bench.wrk import WrkResult, WrkSetup

ALL_CHATS = ["1", str(CHAT_COUNT)]
DISTURBED_PCT = 10.0  # other processes' CPU during a run, in % of a core, that voids it
POOL_MARGIN = 1.5  # the DELETE pool is grown to 1.5x the requests a run is expected to make


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def check(what: str, result: WrkResult) -> None:
    if result.failed:
        raise BenchError(
            f"{what}: wrk saw errors: {result.describe_errors()}. The run is FAILED.\n"
            f"{result.output}"
        )


@dataclass
class DeletePool:
    """The reserved chats the DELETE benchmark walks through, each deleted once."""

    engine: Engine
    dataset: Dataset
    next_id: int = 0
    grown_by: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.next_id = self.dataset.pool_first

    def args_for(self, expected_requests: float) -> list[str]:
        """The id range for a run expected to make that many requests, grown if need be."""
        needed = math.ceil(expected_requests * POOL_MARGIN)
        left = self.dataset.pool_last - self.next_id + 1
        if left < needed:
            log(f"growing the DELETE pool by {needed - left} chats ({left} left)")
            seconds = extend_pool(self.engine, self.dataset, needed - left)
            self.grown_by.append(needed - left)
            log(f"  grown in {seconds:.1f} s")
        return [str(self.next_id), str(self.dataset.pool_last)]

    def used(self, result: WrkResult) -> None:
        self.next_id = int(result.extra["last_id"]) + 1

    def take(self, count: int) -> list[int]:
        """The next `count` chats of the pool, for a harness that deletes them itself."""
        if self.dataset.pool_last - self.next_id + 1 < count:
            self.args_for(count / POOL_MARGIN)  # grown, where it still can be
        taken = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return taken


class Bench:
    def __init__(
        self,
        config: BenchConfig,
        setup: WrkSetup,
        service: Server,
        postmaster_pid: int,
        pool: DeletePool,
        quiet: procstat.QuietWaiter,
    ) -> None:
        self.config = config
        self.setup = setup
        self.service = service
        self.postmaster_pid = postmaster_pid
        self.pool = pool
        self.meter = CpuMeter(service.pid, postmaster_pid, server_tree=service.workers > 1)
        self.quiet = quiet
        self.repeated: list[str] = []  # runs measured again because other load disturbed them

    def _run(self, target: Server, script: str, args: list[str], seconds: int) -> WrkResult:
        return wrk.run(self.setup, target.url, script, args, seconds)

    def _measured(
        self, name: str, label: str, target: Server, script: str, args: list[str], warm: WrkResult
    ) -> Measurement:
        meter = self.meter if target is self.service else CpuMeter(target.pid, self.postmaster_pid)
        sessions = self._sessions()
        start = meter.snapshot()
        result = self._run(target, script, args, self.config.duration)
        cpu = meter.usage(start, result.wrk_cpu_s)
        connects = (self._sessions() - sessions) / result.duration_s
        check(name, result)
        standby = f", standby {cpu.standby_pct:.0f}%" if meter.standby_pid else ""
        log(
            f"{label:<48} {result.rps:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
            f"p99 {result.p99_ms:7.2f} ms  (CPU: server {cpu.server_pct:.0f}%, "
            f"postgres {cpu.postgres_pct:.0f}%{standby}, wrk {cpu.wrk_pct:.0f}%, "
            f"other {cpu.other_pct:.0f}%; {connects:.0f} connections/s to PostgreSQL)"
        )
        return Measurement(
            name, label, result, warm.rps, warm.requests, cpu, connects, target.rss_kib()
        )

    def _sessions(self) -> int:
        """Connections made to the database so far (PostgreSQL's own count)."""
        with self.pool.engine.connect() as connection:
            connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(
                connection.scalar(
                    text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
                )
                or 0
            )

    def measure(
        self, name: str, label: str, script: str, args: list[str], target: Server | None = None
    ) -> Measurement:
        """A warm-up run, then the measured run, with the same script and arguments.

        A run that other processes on the machine disturbed (DISTURBED_PCT of a core) is
        measured again once the machine is quiet, up to `retries` times; the least
        disturbed one is kept, and its `other` CPU is reported either way.
        """
        target = target or self.service
        best = self._warm_and_measure(name, label, target, script, args)
        for _ in range(self.config.retries):
            if best.cpu.other_pct < DISTURBED_PCT:
                break
            log(f"  disturbed by other load ({best.cpu.other_pct:.0f}% of a core): again")
            self.repeated.append(label)
            self.quiet.wait()
            again = self._warm_and_measure(name, label, target, script, args)
            best = min(best, again, key=lambda m: m.cpu.other_pct)
        return best

    def _warm_and_measure(
        self, name: str, label: str, target: Server, script: str, args: list[str]
    ) -> Measurement:
        warm = self._run(target, script, args, self.config.warmup)
        check(f"{name} (warm-up)", warm)
        return self._measured(name, label, target, script, args, warm)

    def measure_delete(self, floor_rps: float) -> Measurement:
        """DELETE /chats/{id} over the pool; the floor's rate bounds the warm-up's."""
        args = self.pool.args_for(floor_rps * self.config.warmup)
        warm = self._run(self.service, "delete.lua", args, self.config.warmup)
        self.pool.used(warm)
        check("delete (warm-up)", warm)
        args = self.pool.args_for(warm.rps * self.config.duration + self.config.connections)
        measurement = self._measured(
            "delete", "DELETE /chats/{id}", self.service, "delete.lua", args, warm
        )
        self.pool.used(measurement.result)
        return measurement

    def chat_sizes(self, kind: str) -> dict[str, Measurement]:
        """GET (limit=20) or POST on one chat of each size, all requests on that chat."""
        runs = {}
        for size, chat in CHAT_OF_SIZE.items():
            if kind == "get":
                script, args, label = "get.lua", [str(chat), str(chat), "20"], "GET"
            else:
                script, args, label = "post_message.lua", [str(chat), str(chat)], "POST"
            runs[str(size)] = self.measure(
                f"{kind}_size_{size}", f"{label} on the {size:,}-message chat", script, args
            )
        return runs

    def query_plans(self) -> dict[str, str]:
        """EXPLAIN ANALYZE of the service's own GET statement, on each chat of the size runs.

        Empty when the service's statement is not where this expects it (the service's code
        is its own): a diagnostic, not a measurement.
        """
        from queries import get_chat

        statement: Any = getattr(get_chat, "CHAT_WITH_LAST_MESSAGES", None)
        if isinstance(statement, dict):  # by kind of caller (False: a service); older: by database
            statement = statement.get(False, statement.get("postgresql"))
        if statement is None:
            return {}
        plans = {}
        try:
            with self.pool.engine.connect() as connection:
                compiled = statement.compile(dialect=connection.dialect)
                for size, chat in CHAT_OF_SIZE.items():
                    params = compiled.construct_params({"chat_id": chat, "limit": 20})
                    rows = connection.exec_driver_sql(
                        f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", params
                    ).all()
                    plans[str(size)] = "\n".join(row[0] for row in rows)
        except Exception as exc:  # a diagnostic: never worth failing the run for
            log(f"could not EXPLAIN the GET statement: {exc}")
        return plans

    def message_counts(self) -> dict[str, int]:
        """How many messages each chat of the size runs has now, by its size at load."""
        with self.pool.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT chat_id, count(*) FROM messages WHERE chat_id = ANY(:ids) "
                    "GROUP BY chat_id"
                ),
                {"ids": list(CHAT_OF_SIZE.values())},
            ).tuples()
            counts = {int(chat): int(count) for chat, count in rows}
        return {str(size): counts.get(chat, 0) for size, chat in CHAT_OF_SIZE.items()}

    def soak(self) -> Soak:
        """RSS after a warm-up, then after `soak_requests` more requests of the mix."""
        warm = self._run(self.service, "mixed.lua", ALL_CHATS, self.config.warmup)
        check("soak (warm-up)", warm)
        before = self.service.rss_kib()
        start = self.meter.snapshot()
        samples = [(0, before)]
        runs: list[WrkResult] = []
        total, rate, elapsed = 0, warm.rps, 0.0
        while total < self.config.soak_requests:
            if len(runs) == 10:
                raise BenchError(f"the soak made only {total} requests in 10 runs")
            seconds = max(2, math.ceil((self.config.soak_requests - total) / rate * 1.05))
            result = self._run(self.service, "mixed.lua", ALL_CHATS, seconds)
            check("soak", result)
            runs.append(result)
            total += result.requests
            elapsed += result.duration_s
            rate = max(result.rps, 1.0)
            samples.append((total, self.service.rss_kib()))
        cpu = self.meter.usage(start, sum(run.wrk_cpu_s for run in runs))
        after = samples[-1][1]
        change = 100 * (after - before) / before
        log(f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB after {total:,} requests")
        return Soak(total, before, after, change, total / elapsed, samples, runs, cpu)
