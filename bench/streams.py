"""The event-stream scenarios: idle streams, delivery latency, POST with streams open, WORKERS.

On a service of their own, started here and pinned as the others (one uvicorn worker alone
on the server's CPU), with the stream client (bench/stream_client.py) holding BENCH_STREAMS
streams over chats 1..BENCH_STREAM_CHATS from one process on the client's CPU, in order:

1. POST /chats/{id}/messages/ over those chats with wrk, no stream open;
2. the server idle for BENCH_IDLE_SECONDS: its CPU and RSS, no stream open;
3. the streams opened; the server's RSS again, and idle again, every stream open;
4. delivery: bench/poster.py posts BENCH_POST_RATE messages a second over the chats for
   BENCH_DELIVERY_SECONDS, and each 201 is matched with its event on every stream of its chat;
5. the POST run of 1 again, every stream open, and the time the streams take to get it all;
6. the streams closed: GET /chats/{id}?limit=20 on this service, then on WORKERS=1 and
   WORKERS=2 servers not pinned to a CPU; then the main POST run (POST /chats/{id}/messages/
   over all the chats) on such servers, the same way.

A stream that misses, repeats or reorders an event, or is closed, before the POST run with
streams fails the bench run: its latency would not mean what it says.
"""

import contextlib
import json
import math
import os
import resource
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import machine, profile, server
from bench.config import BenchConfig, BenchError, Pinning, taskset
from bench.procstat import CpuMeter, CpuUsage, QuietWaiter
from bench.results import (
    WORKERS_1,
    WORKERS_2,
    WORKERS_PINNED,
    Delivery,
    IdleStreams,
    Measurement,
    Profile,
    Streams,
)
from bench.scenarios import ALL_CHATS, Bench, DeletePool, log
from bench.server import ROOT, Server
from bench.stream_client import chat_ids
from bench.targets import DELIVERY_P99_MS, POST_WITH_STREAMS, delivery_met, post_ratio
from bench.wrk import WrkSetup

SETTLE_S = 2.0  # after the streams are open, before the RSS is read and the idle window starts
DELIVERY_WAIT_S = 10.0  # the longest wait for a delivery window's last events
CATCH_UP_WAIT_S = 60.0  # the longest wait for the POST run's last events
POLL_S = 0.02
FAULTS = ("gaps", "duplicates", "dropped")  # what a stream may never see in a measured window
# The profiles these scenarios may take: a streams-only run replaces the saved ones.
PROFILE_DELIVERY, PROFILE_POST = "delivery", "post-streams"
PROFILE_NAMES = (PROFILE_DELIVERY, PROFILE_POST)
LAST_SEQS = text("SELECT id, last_seq FROM chats WHERE id BETWEEN 1 AND :chats")


class HeldStreams:
    """The stream client process, and the harness's side of its line protocol."""

    def __init__(
        self, url: str, chats: tuple[int, int], streams: int, cpus: str | None, log_file: Path
    ) -> None:
        """`streams` over the chats `chats[0]`, ..., `chats[0] + chats[1] - 1`."""
        args = [url, str(chats[0]), str(chats[1]), str(streams)]
        command = taskset(cpus, [sys.executable, "-m", "bench.stream_client", *args])
        self.log_file = log_file
        started = time.monotonic()
        with log_file.open("ab") as errors:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
            )
        self._buffer = b""
        try:
            ready = self._line(180)
            if not ready.startswith("ready "):
                raise BenchError(f"the stream client could not open its streams: {ready}")
        except BaseException:
            self.close()
            raise
        self.open_s = time.monotonic() - started

    @property
    def pid(self) -> int:
        return self.process.pid

    def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        out = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out], [], [], left)[0]:
                raise BenchError(f"the stream client did not answer within {timeout} s")
            chunk = os.read(out, 65536)
            if not chunk:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise BenchError(f"the stream client exited:\n{tail}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def ask(self, command: str, timeout: float = 60) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        self.process.stdin.flush()
        return self._line(timeout)

    def counts(self) -> tuple[int, int, int]:
        """message.posted events since the mark, streams dropped, heartbeats so far."""
        _, events, dropped, pings = self.ask("count").split()
        return int(events), int(dropped), int(pings)

    def wait_for(self, events: int, timeout: float) -> int:
        """Waits until `events` have arrived since the mark; returns how many have."""
        deadline = time.monotonic() + timeout
        arrived = self.counts()[0]
        while arrived < events and time.monotonic() < deadline:
            time.sleep(POLL_S)
            arrived = self.counts()[0]
        return arrived

    def dump(self, path: Path) -> dict[str, Any]:
        self.ask(f"dump {path}")
        arrivals: dict[str, Any] = json.loads(path.read_text())
        return arrivals

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(BenchError, OSError):  # it is killed below if need be
                self.ask("close", timeout=10)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def percentile(ordered: list[float], pct: float) -> float:
    """The nearest-rank percentile of an ascending list (NaN for an empty one)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def delivery(
    posted: list[list[Any]],
    streams: list[dict[str, Any]],
    wall_s: float,
    late_s: list[float],
    cpu: CpuUsage,
) -> Delivery:
    """Each post's 201 matched with its event's arrival on every stream of its chat.

    `posted`: [chat, seq, 201 read at]; `streams`: {"chat", "arrivals": [[seq, at], ...]},
    both on the system's monotonic clock. Arrivals of other posts are ignored; a delivery
    that never arrived counts as infinitely late.
    """
    answered = {(int(chat), int(seq)): float(at) for chat, seq, at in posted}
    streams_of = Counter(int(stream["chat"]) for stream in streams)
    expected = sum(streams_of[chat] for chat, _ in answered)
    latencies, early = [], 0
    for stream in streams:
        chat = int(stream["chat"])
        for seq, at in stream["arrivals"]:
            answered_at = answered.get((chat, int(seq)))
            if answered_at is None:
                continue
            delay_ms = 1000 * (float(at) - answered_at)
            if delay_ms < 0:  # the stream had it before the poster had read its 201
                early += 1
                delay_ms = 0.0
            latencies.append(delay_ms)
    received = len(latencies)
    ordered = sorted(latencies) + [math.inf] * max(0, expected - received)
    return Delivery(
        posts=len(answered),
        rate=len(answered) / wall_s if wall_s else 0.0,
        expected=expected,
        received=received,
        early=early,
        p50_ms=percentile(ordered, 50),
        p90_ms=percentile(ordered, 90),
        p99_ms=percentile(ordered, 99),
        p999_ms=percentile(ordered, 99.9),
        max_ms=ordered[-1] if ordered else math.nan,
        late_p99_ms=1000 * percentile(sorted(late_s), 99),
        cpu=cpu,
    )


def _check(what: str, arrivals: dict[str, Any], kinds: tuple[str, ...] = FAULTS) -> None:
    """Fails the run on any of these faults in the stream client's counters."""
    faults = {name: arrivals[name] for name in kinds if arrivals[name]}
    if faults:
        found = ", ".join(f"{count} {name}" for name, count in faults.items())
        reasons = "; ".join(arrivals["reasons"])
        raise BenchError(f"{what}: the streams saw {found} ({reasons}). The run is FAILED.")


@dataclass(frozen=True)
class PostWith:
    """The POST run with every stream open, and how its messages reached the streams."""

    measurement: Measurement
    posted: int  # messages posted (warm-up and measured runs)
    expected: int  # their events: each once on every stream of its chat
    delivered: int  # of those, arrived
    catch_up_s: float  # from the end of the posts until the last of those events arrived


@dataclass
class StreamBench:
    """What the stream scenarios need of the run: its config, wrk, PostgreSQL, CPUs, files."""

    config: BenchConfig
    setup: WrkSetup
    database_url: str
    pinning: Pinning
    postmaster_pid: int
    pool: DeletePool  # its engine reads the database; no chat of it is deleted here
    quiet: QuietWaiter
    work: Path
    docs: Path

    @property
    def chat_args(self) -> list[str]:
        return ["1", str(self.config.stream_chats)]

    def start(self, workers: int, cpus: str | None) -> Server:
        # MAX_STREAMS as many as are held, so that the limit is never what is measured.
        settings = {"MAX_STREAMS": str(self.config.streams)}
        return server.start_service(self.database_url, cpus, self.work, workers, settings)

    def runner(self, service: Server) -> Bench:
        return Bench(self.config, self.setup, service, self.postmaster_pid, self.pool, self.quiet)

    def run(self) -> tuple[Streams, list[Profile]]:
        """Steps 1 to 6; the profiles of the targets missed, when BENCH_PROFILE is on."""
        config, chats = self.config, self.config.stream_chats
        started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        code = machine.code_version(ROOT)
        _raise_open_files_limit()
        profiles: list[Profile] = []
        service = self.start(1, self.pinning.server)
        try:
            runner = self.runner(service)
            log(f"streams: {config.streams:,} streams over chats 1..{chats}, pid {service.pid}")
            post_without = runner.measure(
                "post_no_streams",
                f"POST /chats/{{id}}/messages/ over chats 1..{chats}, no stream open",
                "post_message.lua",
                self.chat_args,
            )
            rss_without = service.rss_kib()
            idle_without = self._idle(runner.meter, "no stream open")
            held = HeldStreams(
                service.url,
                (1, chats),
                config.streams,
                self.pinning.client,
                self.work / "client.log",
            )
            runner.meter.client_pids.append(held.pid)
            try:
                log(f"streams: {config.streams:,} open in {held.open_s:.1f} s")
                time.sleep(SETTLE_S)
                rss_with = service.rss_kib()
                pings = held.counts()[2]
                idle_with = self._idle(runner.meter, f"{config.streams:,} streams open")
                idle = IdleStreams(
                    seconds=config.idle_seconds,
                    rss_without_kib=rss_without,
                    rss_with_kib=rss_with,
                    without=idle_without,
                    with_streams=idle_with,
                    pings=held.counts()[2] - pings,
                )
                found = self._delivery(service, runner.meter, held)
                if config.profile and not delivery_met(found):
                    profiles += self._profile_delivery(service)
                post_with = self._post_with(runner, held)
                ratio = post_ratio(post_without, post_with.measurement)
                if config.profile and ratio < POST_WITH_STREAMS:
                    profiles += self._profile_post(service)
                dropped = held.counts()[1]
            finally:
                held.close()
                runner.meter.client_pids.clear()
            workers, workers_post = self._workers(service)
        except BaseException:
            print(f"--- service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
            raise
        finally:
            service.stop()
        streams = Streams(
            started_at=started_at,
            code=code,
            alone=config.only == "streams",
            streams=config.streams,
            chats=chats,
            open_s=held.open_s,
            idle=idle,
            delivery=found,
            post_without=post_without,
            post_with=post_with.measurement,
            posted_with=post_with.posted,
            expected_with=post_with.expected,
            delivered_with=post_with.delivered,
            catch_up_s=post_with.catch_up_s,
            dropped=dropped,
            workers=workers,
            workers_post=workers_post,
        )
        return streams, profiles

    def _idle(self, meter: CpuMeter, what: str) -> CpuUsage:
        start = meter.snapshot()
        time.sleep(self.config.idle_seconds)
        cpu = meter.usage(start, 0.0)
        log(
            f"streams: idle, {what}: server {cpu.server_pct:.1f}% of a core, PostgreSQL "
            f"{cpu.postgres_pct:.1f}%, stream client {cpu.clients_pct:.1f}%"
        )
        return cpu

    def _poster(self, url: str, seconds: float, output: Path) -> subprocess.Popen[bytes]:
        args = [url, *self.chat_args, str(self.config.post_rate), str(seconds), str(output)]
        command = taskset(self.pinning.client, [sys.executable, "-m", "bench.poster", *args])
        return subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)

    @staticmethod
    def _posted(poster: subprocess.Popen[bytes], output: Path, timeout: float) -> dict[str, Any]:
        try:
            _, errors = poster.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            poster.kill()
            poster.wait()
            raise BenchError(f"the poster did not finish within {timeout} s") from None
        if poster.returncode != 0:
            raise BenchError(f"the poster failed ({poster.returncode}):\n{errors.decode()}")
        posted: dict[str, Any] = json.loads(output.read_text())
        if posted["failed"]:
            raise BenchError(f"posts failed: {posted['failed'][:5]}")
        return posted

    def _delivery(self, service: Server, meter: CpuMeter, held: HeldStreams) -> Delivery:
        config = self.config
        streams_of = Counter(chat_ids(1, config.stream_chats, config.streams))
        output = self.work / "posted.json"
        held.ask("mark")
        start = meter.snapshot()
        poster = self._poster(service.url, config.delivery_seconds, output)
        posted = self._posted(poster, output, config.delivery_seconds + 120)
        expected = sum(streams_of[chat] for chat, _, _ in posted["posted"])
        held.wait_for(expected, DELIVERY_WAIT_S)
        cpu = meter.usage(start, posted["cpu_s"])
        arrivals = held.dump(self.work / "arrivals.json")
        _check("delivery", arrivals)
        found = delivery(
            posted["posted"], arrivals["streams"], posted["wall_s"], posted["late_s"], cpu
        )
        log(
            f"streams: delivery of {found.posts:,} posts ({found.rate:.0f}/s) to "
            f"{found.received:,} of {found.expected:,} streams: p50 {found.p50_ms:.2f} ms, "
            f"p99 {found.p99_ms:.2f} ms, max {found.max_ms:.2f} ms (CPU: server "
            f"{cpu.server_pct:.0f}%, PostgreSQL {cpu.postgres_pct:.0f}%, poster "
            f"{cpu.wrk_pct:.0f}%, stream client {cpu.clients_pct:.0f}%)"
        )
        return found

    def _last_seqs(self) -> dict[int, int]:
        with self.pool.engine.connect() as connection:
            rows = connection.execute(LAST_SEQS, {"chats": self.config.stream_chats}).tuples()
            return {int(chat): int(seq) for chat, seq in rows}

    def _settled_last_seqs(self) -> dict[int, int]:
        """The chats' last seqs once no more posts commit: wrk stops with requests in flight,
        which the server still finishes after wrk has exited."""
        deadline = time.monotonic() + SETTLE_S * 5
        last = self._last_seqs()
        while time.monotonic() < deadline:
            time.sleep(SETTLE_S / 4)
            now = self._last_seqs()
            if now == last:
                return now
            last = now
        raise BenchError(f"posts still committing {SETTLE_S * 5:g} s after the POST run ended")

    def _post_with(self, runner: Bench, held: HeldStreams) -> "PostWith":
        """The POST run again, every stream open; then until the streams have had it all."""
        config = self.config
        streams_of = Counter(chat_ids(1, config.stream_chats, config.streams))
        before = self._last_seqs()
        held.ask("mark")
        measurement = runner.measure(
            "post_streams",
            f"POST /chats/{{id}}/messages/ over chats 1..{config.stream_chats}, "
            f"{config.streams:,} streams open",
            "post_message.lua",
            self.chat_args,
        )
        ended = time.monotonic()
        after = self._settled_last_seqs()
        posted = {chat: after[chat] - before.get(chat, 0) for chat in after}
        expected = sum(streams_of[chat] * count for chat, count in posted.items())
        held.wait_for(expected, CATCH_UP_WAIT_S)
        arrivals = held.dump(self.work / "arrivals-post.json")
        # A stream the server closes under this load is reported, not fatal: see `dropped`.
        _check("POST with streams", arrivals, ("gaps", "duplicates"))
        times = [at for stream in arrivals["streams"] for _, at in stream["arrivals"]]
        delivered = len(times)
        catch_up = max(0.0, max(times, default=ended) - ended)
        log(
            f"streams: {delivered:,} of {expected:,} events for {sum(posted.values()):,} posts "
            f"reached the streams, the last {catch_up:.2f} s after the POST run ended"
        )
        return PostWith(measurement, sum(posted.values()), expected, delivered, catch_up)

    def _profile_post(self, service: Server) -> list[Profile]:
        """py-spy on the server while wrk posts, every stream open."""
        log("target missed: POST throughput with streams open; profiling it")
        label = f"POST /chats/{{id}}/messages/, {self.config.streams:,} streams open"
        args = self.chat_args
        found = profile.record(
            PROFILE_POST, label, service, self.setup, "post_message.lua", args, self.docs
        )
        return [found] if found else []

    def _profile_delivery(self, service: Server) -> list[Profile]:
        """py-spy on the server while the poster posts at the steady rate, every stream open."""
        config, seconds = self.config, 2 * profile.PROFILE_S + 4 * profile.WARM_S
        log(f"target missed: delivery p99 > {DELIVERY_P99_MS:g} ms; profiling it")
        output = self.work / "posted-profile.json"
        poster = self._poster(service.url, seconds, output)

        def stop() -> float:
            posted = self._posted(poster, output, seconds + 120)
            return len(posted["posted"]) / float(posted["wall_s"])

        def kill() -> None:
            poster.kill()
            poster.wait()

        label = f"{config.post_rate} posts/s, {config.streams:,} streams open"
        cpus = self.pinning.client
        found = profile.record_under(PROFILE_DELIVERY, label, service, cpus, self.docs, stop, kill)
        return [found] if found else []

    def _workers(self, pinned: Server) -> tuple[dict[str, Measurement], dict[str, Measurement]]:
        """GET on the pinned one-worker service, then on unpinned WORKERS=1 and WORKERS=2;
        then POST on unpinned WORKERS=1 and WORKERS=2: the GET runs and the POST runs."""
        get_args = [*ALL_CHATS, "20"]
        log("streams: closed; GET /chats/{id}?limit=20, server pinned")
        get = {
            WORKERS_PINNED: self.runner(pinned).measure(
                "get_workers_1_pinned",
                f"WORKERS=1, server on CPU {self.pinning.server}",
                "get.lua",
                get_args,
            )
        }
        pinned.stop()
        post: dict[str, Measurement] = {}
        # A new server for each run, so that the two runs compared come one after the other:
        # neither GET run comes after one server's POSTs and not the other's.
        for kind, runs, script, args in (
            ("get", get, "get.lua", get_args),
            ("post", post, "post_message.lua", ALL_CHATS),
        ):
            log(f"streams: {kind.upper()} ({script}) by WORKERS, servers on any CPU")
            for workers, key in ((1, WORKERS_1), (2, WORKERS_2)):
                service = self.start(workers, self.pinning.every)
                try:
                    runs[key] = self.runner(service).measure(
                        f"{kind}_workers_{workers}",
                        f"WORKERS={workers}, server on any CPU",
                        script,
                        args,
                    )
                finally:
                    service.stop()
        return get, post


def _raise_open_files_limit() -> None:
    """A socket per stream on each side: the soft limit up to the hard one (children inherit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
