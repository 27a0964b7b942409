"""The replica scenarios: reads on a streaming standby against reads on the primary.

A hot standby of the run's cluster is made with `pg_basebackup -R` once the other scenarios
are done (nothing before pays for its WAL replay), started with the stock postgresql.conf on
PostgreSQL's CPUs, and removed at the end. Then, on a service of their own pinned as the
others, first with its reads on the primary (READ_DATABASE_URL unset), then on the standby:

1. GET /chats/{id}?limit=20 with wrk, as the get20 run: the throughput;
2. BENCH_FRESH_READS rounds from this process, on one keep-alive connection, in turn over
   the chats: POST a message, GET its chat with the POST's Consistency-Token (what a client
   reading its own write waits), and the same GET again without a token (the read alone).

The service says nowhere which server answered a read; one with a token that fell back to
the primary has waited REPLICA_WAIT first, so it is counted by its time (`waited_out`).
A read with its token that does not show its POST is counted as stale.
"""

import gc
import http.client
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine, create_engine, text

from bench import machine, postgres, server
from bench.config import BenchConfig, BenchError, Pinning
from bench.dataset import CHAT_COUNT
from bench.procstat import CpuMeter, CpuUsage, QuietWaiter
from bench.results import FreshReads, Latency, ReadsOn, Replicas
from bench.scenarios import ALL_CHATS, Bench, DeletePool, log
from bench.server import ROOT
from bench.streams import percentile
from bench.wrk import WrkSetup
from devtools.postgres_cluster import PostgresCluster
from infrastructure.consistency import HEADER
from infrastructure.settings import Settings

# The service's own default, set explicitly: a REPLICA_WAIT in the harness's environment
# would otherwise reach the service and change what `waited_out` counts.
REPLICA_WAIT_S = float(Settings.model_fields["replica_wait"].default)
WARM_ROUNDS = 50  # untimed rounds first: the service's pools connected, its code paths warm
BODY = json.dumps({"text": "A message read right back, about as long as a chat line."})
JSON = {"Content-Type": "application/json"}
DATABASES_MB = text("SELECT sum(pg_database_size(datname)) / 1048576.0 FROM pg_database")
REPLICATION = text("SELECT state || ', ' || sync_state FROM pg_stat_replication")


@dataclass(frozen=True)
class Round:
    """One POST and the two reads after it, as the client timed them."""

    post_s: float
    read_s: float  # with the POST's token
    plain_s: float  # the same read at once, without a token
    shown: bool  # the read with the token had the POST's message


@dataclass
class Answer:
    status: int
    token: str | None
    body: bytes
    seconds: float


class Client:
    """One keep-alive connection, as a chat client holds one; each request timed from
    sending it to the last byte of its body."""

    def __init__(self, url: str) -> None:
        address = urlsplit(url)
        self._connection = http.client.HTTPConnection(
            address.hostname or "", address.port, timeout=30
        )

    def send(
        self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        started = time.perf_counter()
        self._connection.request(method, path, body, headers or {})
        response = self._connection.getresponse()
        data = response.read()
        seconds = time.perf_counter() - started
        return Answer(response.status, response.getheader(HEADER), data, seconds)

    def close(self) -> None:
        self._connection.close()


def _expect(what: str, answer: Answer, status: int) -> None:
    if answer.status != status:
        raise BenchError(f"{what} answered {answer.status}: {answer.body[:200]!r}")


def one_round(client: Client, chat: int, replicas: bool) -> Round:
    """`replicas`: the service reads from replicas, so its writes give a token (a service on
    the primary alone gives none: every read there shows every write)."""
    posted = client.send("POST", f"/chats/{chat}/messages/", BODY, JSON)
    _expect(f"POST /chats/{chat}/messages/", posted, 201)
    if replicas and posted.token is None:
        raise BenchError(f"POST /chats/{chat}/messages/ answered without a {HEADER}")
    seq = json.loads(posted.body)["seq"]
    path = f"/chats/{chat}?limit=20"
    read = client.send("GET", path, headers={HEADER: posted.token} if posted.token else {})
    _expect(f"GET {path} with a {HEADER}", read, 200)
    plain = client.send("GET", path)
    _expect(f"GET {path}", plain, 200)
    shown = any(message["seq"] == seq for message in json.loads(read.body)["messages"])
    return Round(posted.seconds, read.seconds, plain.seconds, shown)


def latency(seconds: list[float]) -> Latency:
    ordered = sorted(1000 * value for value in seconds)
    return Latency(
        samples=len(ordered),
        p50_ms=percentile(ordered, 50),
        p90_ms=percentile(ordered, 90),
        p99_ms=percentile(ordered, 99),
        max_ms=ordered[-1] if ordered else math.nan,
    )


def fresh_reads(rounds: list[Round], wait_s: float, cpu: CpuUsage) -> FreshReads:
    """The rounds' latencies; a read with its token that took `wait_s` or more waited the
    whole REPLICA_WAIT out, and was then served by the primary."""
    return FreshReads(
        post=latency([r.post_s for r in rounds]),
        with_token=latency([r.read_s for r in rounds]),
        without_token=latency([r.plain_s for r in rounds]),
        waited_out=sum(r.read_s >= wait_s for r in rounds),
        stale=sum(not r.shown for r in rounds),
        cpu=cpu,
    )


@dataclass
class ReplicaBench:
    """What the replica scenarios need of the run: its config, wrk, PostgreSQL, CPUs, files."""

    config: BenchConfig
    setup: WrkSetup
    primary: PostgresCluster
    pinning: Pinning
    pool: DeletePool  # its engine reads the primary; no chat of it is deleted here
    quiet: QuietWaiter
    work: Path

    def run(self) -> Replicas:
        started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        began = time.monotonic()
        code = machine.code_version(ROOT)
        engine = self.pool.engine
        with engine.connect() as connection:
            database_mb = float(connection.scalar(DATABASES_MB) or 0)
        log(f"replicas: copying the cluster ({database_mb:,.0f} MB) to a new standby")
        started = time.monotonic()
        log_file = self.work / "standby.log"
        standby = postgres.start_standby(self.primary, self.pinning.postgres, log_file)
        try:
            base_backup_s = time.monotonic() - started
            with engine.connect() as connection:
                replication = ", ".join(connection.scalars(REPLICATION)) or "not streaming"
            primary_settings = postgres.settings(engine, postgres.REPLICATION_SETTINGS)
            log(f"replicas: standby streaming after {base_backup_s:.1f} s ({replication})")
            standby_settings = _settings(create_engine(standby.url))
            standby_pid = postgres.postmaster_pid(standby)
            on_primary = self._reads_on("primary", "", standby_pid)
            on_standby = self._reads_on("standby", standby.url, standby_pid)
        finally:
            standby.remove()
        total_s = time.monotonic() - began
        log(f"replicas: done in {total_s:.0f} s")
        return Replicas(
            started_at=started_at,
            code=code,
            alone=self.config.only == "replicas",
            database_mb=database_mb,
            base_backup_s=base_backup_s,
            replication=replication,
            replica_wait_s=REPLICA_WAIT_S,
            primary_settings=primary_settings,
            standby_settings=standby_settings,
            primary=on_primary,
            standby=on_standby,
            total_s=total_s,
        )

    def _reads_on(self, target: str, read_url: str, standby_pid: int) -> ReadsOn:
        """A service reading from `read_url` (empty: the primary), measured, then stopped."""
        settings = {"READ_DATABASE_URL": read_url, "REPLICA_WAIT": str(REPLICA_WAIT_S)}
        service = server.start_service(
            self.primary.url, self.pinning.server, self.work, settings=settings
        )
        try:
            postmaster = postgres.postmaster_pid(self.primary)
            runner = Bench(self.config, self.setup, service, postmaster, self.pool, self.quiet)
            # Both services' runs count the standby's CPU apart, so that neither run takes
            # its WAL replay for other load.
            runner.meter.standby_pid = standby_pid
            get = runner.measure(
                f"get20_reads_on_{target}",
                f"GET /chats/{{id}}?limit=20, reads on the {target}",
                "get.lua",
                [*ALL_CHATS, "20"],
            )
            fresh = self._fresh(service.url, target, runner.meter, replicas=bool(read_url))
        except BaseException:
            print(f"--- service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
            raise
        finally:
            service.stop()
        return ReadsOn(get, fresh)

    def _fresh(self, url: str, target: str, meter: CpuMeter, replicas: bool) -> FreshReads:
        client = Client(url)
        chats = [1 + index % CHAT_COUNT for index in range(WARM_ROUNDS + self.config.fresh_reads)]
        # A collection in this process would land in some request's time: none meanwhile.
        gc.disable()
        try:
            for chat in chats[:WARM_ROUNDS]:
                one_round(client, chat, replicas)
            start, client_s = meter.snapshot(), time.process_time()
            rounds = [one_round(client, chat, replicas) for chat in chats[WARM_ROUNDS:]]
            cpu = meter.usage(start, time.process_time() - client_s)
        finally:
            gc.enable()
            client.close()
        found = fresh_reads(rounds, REPLICA_WAIT_S, cpu)
        read, plain = found.with_token, found.without_token
        log(
            f"replicas: reads on the {target}, right after a POST: with its token p50 "
            f"{read.p50_ms:.2f} ms, p99 {read.p99_ms:.2f} ms, max {read.max_ms:.2f} ms; "
            f"without p50 {plain.p50_ms:.2f} ms, p99 {plain.p99_ms:.2f} ms; "
            f"{found.waited_out} waited REPLICA_WAIT out, {found.stale} stale (CPU: server "
            f"{cpu.server_pct:.0f}%, postgres {cpu.postgres_pct:.0f}%, standby "
            f"{cpu.standby_pct:.0f}%, client {cpu.wrk_pct:.0f}%, other {cpu.other_pct:.0f}%)"
        )
        return found


def _settings(engine: Engine) -> dict[str, str]:
    try:
        return postgres.settings(engine, postgres.REPLICATION_SETTINGS)
    finally:
        engine.dispose()
