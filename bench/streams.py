"""The event-stream scenarios: the stream floor, idle streams, delivery latency, POST with
streams open, WORKERS, many idle streams, subscribers that never read.

First the stream floor (bench/stream_floor.py), pinned as the service will be: the POST run
of 1 below without streams, then with the same streams open, the events counted as in 5.
The service's server CPU per delivered event is compared with the floor's (targets.py's
cpu_per_event).

Then on a service of their own, started here and pinned as the others (one uvicorn worker alone
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
   over all the chats) on such servers, the same way;
7. on a pinned one-worker service of its own, BENCH_IDLE_STREAMS streams over chats
   1..BENCH_IDLE_CHATS: its RSS before and after they are open, its CPU over
   BENCH_IDLE_SECONDS without and with them, nothing posted;
8. on a pinned one-worker service of its own, STREAM_SEND_TIMEOUT=STUCK_SEND_TIMEOUT_S:
   streams that read (the stream client) over chats 1..STUCK_CHATS and a burst of large
   posts to those chats; then STUCK_STREAMS subscribers that never read
   (bench/stuck_streams.py) on the same chats and the same burst again. The server's RSS
   growth while they are stuck, beyond the first burst's; when the server closed each; and
   whether the reading streams got every event meanwhile.

A stream that misses, repeats or reorders an event, or is closed, before the POST run with
streams fails the bench run: its latency would not mean what it says.
"""

import contextlib
import http.client
import json
import math
import os
import resource
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

from bench import machine, profile, server
from bench.config import BenchConfig, BenchError, Pinning, taskset
from bench.procstat import CpuMeter, CpuUsage, QuietWaiter
from bench.results import (
    WORKERS_1,
    WORKERS_2,
    WORKERS_PINNED,
    Delivery,
    FloorStreams,
    IdleStreams,
    ManyIdle,
    Measurement,
    NeverReading,
    Profile,
    Streams,
    StuckStream,
)
from bench.scenarios import ALL_CHATS, Bench, DeletePool, log
from bench.server import ROOT, Server
from bench.stream_client import chat_ids
from bench.stuck_streams import (
    StuckSocket,
    Watcher,
    close_bracket,
    count_posted,
    drain_delays,
    last_seq,
    open_stuck,
    stuck_kib_per_stream,
    stuck_times,
)
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
WARM_STREAMS = 100  # opened and closed before the idle streams' service is measured
IDLE_THREAD_WAIT_S = 60  # THREAD_WAIT_TIMEOUT of that service, while its streams open
# Subscribers that never read (step 8).
STUCK_SEND_TIMEOUT_S = 3.0  # STREAM_SEND_TIMEOUT of its service
STUCK_STREAMS = 20
# Chats 1..2: the stuck sockets and the reading streams over them. Few chats: a stuck
# subscriber's buffers take megabytes (see burst_posts), each post fills those of one chat.
STUCK_CHATS = 2
STUCK_READERS = 20
STUCK_TEXT_BYTES = 4000
STUCK_EVENT_BYTES = STUCK_TEXT_BYTES + 150  # its event: the text, the other fields, framing
STUCK_OVERFILL = 1.25
STUCK_MAX_POSTS = 10_000
STUCK_POSTERS = 8  # connections posting at once
STUCK_READERS_WAIT_S = 60.0  # the longest wait for the readers' last events of a burst
DRAINED = ("eof after drain", "reset after drain", "open")  # closes not seen while unread
CLOSED_DRAINED = ("eof after drain",)  # all it was sent came once it was drained
STUCK_RCVBUF = 4096  # SO_RCVBUF asked for (Linux doubles it)
STUCK_STEP_S = 0.05  # between looks at the stuck sockets, and the server's RSS
STUCK_DRAIN_QUIET_S = 1.0  # a drained socket with nothing more for this long is still open
STUCK_TEXT = ("A large message, to fill a subscriber's socket buffers. " * 100)[:STUCK_TEXT_BYTES]


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
        floor = self._floor()
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
        many_idle = self._many_idle()
        never_reading = self._never_reading()
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
            floor=floor,
            many_idle=many_idle,
            never_reading=never_reading,
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

    @staticmethod
    def _settled(last_seqs: Callable[[], dict[int, int]]) -> dict[int, int]:
        """The chats' last seqs once no more posts commit: wrk stops with requests in flight,
        which the server still finishes after wrk has exited."""
        deadline = time.monotonic() + SETTLE_S * 5
        last = last_seqs()
        while time.monotonic() < deadline:
            time.sleep(SETTLE_S / 4)
            now = last_seqs()
            if now == last:
                return now
            last = now
        raise BenchError(f"posts still committing {SETTLE_S * 5:g} s after the POST run ended")

    def _post_with(
        self,
        runner: Bench,
        held: HeldStreams,
        last_seqs: Callable[[], dict[int, int]] | None = None,
        name: str = "post_streams",
        server_name: str = "",
    ) -> "PostWith":
        """The POST run again, every stream open; then until the streams have had it all.
        `last_seqs`: the chats' last seqs, as the server under test counts them (the
        service's: the database's)."""
        config = self.config
        last_seqs = last_seqs or self._last_seqs
        streams_of = Counter(chat_ids(1, config.stream_chats, config.streams))
        before = last_seqs()
        held.ask("mark")
        measurement = runner.measure(
            name,
            f"{server_name}POST /chats/{{id}}/messages/ over chats 1..{config.stream_chats}, "
            f"{config.streams:,} streams open",
            "post_message.lua",
            self.chat_args,
        )
        ended = time.monotonic()
        after = self._settled(last_seqs)
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

    def _floor(self) -> FloorStreams:
        """The POST run on the stream floor, pinned as the service, without and then with the
        same streams open; every event counted, as for the service."""
        config, chats = self.config, self.config.stream_chats
        floor = server.start_stream_floor(self.pinning.server, self.work)
        try:
            runner = self.runner(floor)
            log(f"streams: the stream floor, pid {floor.pid}")
            without = runner.measure(
                "floor_post_no_streams",
                f"stream floor: POST over chats 1..{chats}, no stream open",
                "post_message.lua",
                self.chat_args,
            )
            held = HeldStreams(
                floor.url,
                (1, chats),
                config.streams,
                self.pinning.client,
                self.work / "floor-client.log",
            )
            runner.meter.client_pids.append(held.pid)
            try:
                log(f"streams: {config.streams:,} open on the stream floor in {held.open_s:.1f} s")
                time.sleep(SETTLE_S)
                found = self._post_with(
                    runner, held, lambda: _floor_seqs(floor), "floor_post_streams", "stream floor: "
                )
                dropped = held.counts()[1]
            finally:
                held.close()
                runner.meter.client_pids.clear()
            if dropped or found.delivered != found.expected:
                raise BenchError(
                    f"the stream floor delivered {found.delivered:,} of {found.expected:,} "
                    f"events and closed {dropped} streams: the harness is wrong"
                )
        except BaseException:
            print(f"--- stream floor log (tail) ---\n{floor.log_tail()}", file=sys.stderr)
            raise
        finally:
            floor.stop()
        return FloorStreams(
            open_s=held.open_s,
            post_without=without,
            post_with=found.measurement,
            posted_with=found.posted,
            expected_with=found.expected,
            delivered_with=found.delivered,
            catch_up_s=found.catch_up_s,
        )

    def _many_idle(self) -> ManyIdle:
        """BENCH_IDLE_STREAMS streams on a pinned one-worker service of their own: its RSS
        before and after they are open, its CPU without and with them, nothing posted."""
        config = self.config
        streams, chats = config.idle_streams, config.idle_chats
        # As many streams as are held, the connections beyond them that the service needs
        # above MAX_STREAMS, and time for a stream's first read to get a handler thread while
        # thousands open at once: no limit is what is measured.
        settings = {
            "MAX_STREAMS": str(streams),
            "LIMIT_CONCURRENCY": str(streams + 100),
            "THREAD_WAIT_TIMEOUT": str(IDLE_THREAD_WAIT_S),
        }
        service = server.start_service(
            self.database_url, self.pinning.server, self.work, 1, settings
        )
        meter = CpuMeter(service.pid, self.postmaster_pid)
        client_log = self.work / "idle-client.log"
        try:
            log(f"streams: {streams:,} idle streams over chats 1..{chats}, pid {service.pid}")
            # The stream path warmed first (its code, the pool's connections), as in step 3.
            warm = HeldStreams(
                service.url, (1, chats), WARM_STREAMS, self.pinning.client, client_log
            )
            warm.close()
            time.sleep(SETTLE_S)
            rss_without = service.rss_kib()
            without = self._idle(meter, "no stream open (idle streams' service)")
            held = HeldStreams(service.url, (1, chats), streams, self.pinning.client, client_log)
            meter.client_pids.append(held.pid)
            try:
                log(f"streams: {streams:,} open in {held.open_s:.1f} s")
                time.sleep(SETTLE_S)
                rss_with = service.rss_kib()
                pings = held.counts()[2]
                with_streams = self._idle(meter, f"{streams:,} streams open")
                _, dropped, pings_after = held.counts()
            finally:
                held.close()
        except BaseException:
            print(f"--- service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
            raise
        finally:
            service.stop()
        log(
            f"streams: RSS {rss_without / 1024:.1f} MiB -> {rss_with / 1024:.1f} MiB: "
            f"{(rss_with - rss_without) / streams:.1f} KiB per idle stream; {dropped} dropped"
        )
        idle = IdleStreams(
            seconds=config.idle_seconds,
            rss_without_kib=rss_without,
            rss_with_kib=rss_with,
            without=without,
            with_streams=with_streams,
            pings=pings_after - pings,
        )
        return ManyIdle(
            streams=streams, chats=chats, open_s=held.open_s, idle=idle, dropped=dropped
        )

    def _never_reading(self) -> NeverReading:
        """Step 8: subscribers that never read, beside streams that do, on the same chats."""
        settings = {"STREAM_SEND_TIMEOUT": str(STUCK_SEND_TIMEOUT_S)}
        service = server.start_service(
            self.database_url, self.pinning.server, self.work, 1, settings
        )
        readers_of = Counter(chat_ids(1, STUCK_CHATS, STUCK_READERS))
        tcp_wmem = _sysctl("net/ipv4/tcp_wmem")
        posts = burst_posts(int(tcp_wmem.split()[-1]), HIGH_WATER_LIMIT, STUCK_CHATS)
        stuck: list[StuckSocket] = []
        try:
            log(
                f"streams: {STUCK_STREAMS} subscribers that never read, {STUCK_READERS} that do, "
                f"over chats 1..{STUCK_CHATS}; bursts of {posts:,} posts; "
                f"STREAM_SEND_TIMEOUT={STUCK_SEND_TIMEOUT_S:g}; pid {service.pid}"
            )
            held = HeldStreams(
                service.url,
                (1, STUCK_CHATS),
                STUCK_READERS,
                self.pinning.client,
                self.work / "stuck-client.log",
            )
            try:
                # The same burst with the readers alone first: what a burst costs anyway.
                control_before = service.rss_kib()
                control = _burst(service.url, posts)
                self._readers_caught_up(held, control, readers_of, "the first burst")
                time.sleep(SETTLE_S)
                control_after = service.rss_kib()
                stuck = open_stuck(service.url, STUCK_CHATS, STUCK_STREAMS, STUCK_RCVBUF)
                time.sleep(SETTLE_S)
                rss_before = service.rss_kib()
                held.ask("mark")
                delays = drain_delays(len(stuck), STUCK_SEND_TIMEOUT_S)
                watcher = Watcher(stuck, delays, STUCK_DRAIN_QUIET_S)
                rss_stuck = rss_before
                with ThreadPoolExecutor(1) as pool:
                    burst = pool.submit(_burst, service.url, posts)
                    while not burst.done():
                        watcher.look(STUCK_STEP_S)
                        rss_stuck = max(rss_stuck, service.rss_kib())
                    posted = burst.result()
                first, last = posted[0][2], posted[-1][2]
                # Each drained at its time after it got stuck (the last at twice the send
                # timeout), and read until it ends or is quiet.
                until = last + 3 * STUCK_SEND_TIMEOUT_S + STUCK_DRAIN_QUIET_S
                while not watcher.done and time.monotonic() < until:
                    watcher.look(STUCK_STEP_S)
                    rss_stuck = max(rss_stuck, service.rss_kib())
                watcher.finish()
                expected = sum(readers_of[chat] for chat, _, _ in posted)
                held.wait_for(expected, STUCK_READERS_WAIT_S)
                arrivals = held.dump(self.work / "arrivals-stuck.json")
                for each in stuck:
                    each.close()
                time.sleep(SETTLE_S)
                rss_after = service.rss_kib()
            finally:
                held.close()
        except BaseException:
            print(f"--- service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
            raise
        finally:
            for each in stuck:
                each.close()
            service.stop()
        times = [at for stream in arrivals["streams"] for _, at in stream["arrivals"]]
        found = NeverReading(
            send_timeout_s=STUCK_SEND_TIMEOUT_S,
            chats=STUCK_CHATS,
            readers=STUCK_READERS,
            text_bytes=STUCK_TEXT_BYTES,
            posts=posts,
            rcvbuf_bytes=stuck[0].rcvbuf,
            tcp_wmem=tcp_wmem,
            tcp_rmem=_sysctl("net/ipv4/tcp_rmem"),
            write_high_water_bytes=HIGH_WATER_LIMIT,
            rss_control_before_kib=control_before,
            rss_control_after_kib=control_after,
            rss_before_kib=rss_before,
            rss_stuck_kib=rss_stuck,
            rss_after_kib=rss_after,
            burst_s=last - first,
            expected=expected,
            delivered=len(times),
            reader_faults={name: int(arrivals[name]) for name in FAULTS},
            catch_up_s=max(0.0, max(times, default=last) - last),
            stuck=_stuck_streams(stuck, posted),
        )
        _log_never_reading(found)
        return found

    @staticmethod
    def _readers_caught_up(
        held: HeldStreams, posted: list[tuple[int, int, float]], readers_of: Counter[int], what: str
    ) -> None:
        expected = sum(readers_of[chat] for chat, _, _ in posted)
        arrived = held.wait_for(expected, STUCK_READERS_WAIT_S)
        if arrived != expected:
            raise BenchError(f"{what}: {arrived:,} of {expected:,} events reached the readers")
        held.ask("mark")


def _floor_seqs(floor: Server) -> dict[int, int]:
    """The stream floor's chats' last seqs."""
    answer = server.request(floor.url, "GET", "/seqs")
    return {int(chat): int(seq) for chat, seq in json.loads(answer.body).items()}


def _burst(url: str, posts: int) -> list[tuple[int, int, float]]:
    """`posts` posts of STUCK_TEXT over chats 1..STUCK_CHATS in turn, from STUCK_POSTERS
    keep-alive connections at once: (chat, seq, 201 read at) each, in the order answered."""
    address = urlsplit(url)
    body = json.dumps({"text": STUCK_TEXT})
    headers = {"Content-Type": "application/json"}

    def post_from(first: int) -> list[tuple[int, int, float]]:
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
        posted = []
        try:
            for index in range(first, posts, STUCK_POSTERS):
                chat = 1 + index % STUCK_CHATS
                connection.request("POST", f"/chats/{chat}/messages/", body, headers)
                response = connection.getresponse()
                answer = response.read()
                if response.status != 201:
                    raise BenchError(
                        f"a post to chat {chat} answered {response.status}: {answer!r}"
                    )
                posted.append((chat, int(json.loads(answer)["seq"]), time.monotonic()))
        finally:
            connection.close()
        return posted

    with ThreadPoolExecutor(STUCK_POSTERS) as pool:
        answered = [p for each in pool.map(post_from, range(STUCK_POSTERS)) for p in each]
    return sorted(answered, key=lambda post: post[2])


def burst_posts(wmem_max: int, high_water: int, chats: int) -> int:
    """Posts enough that each chat's events are STUCK_OVERFILL times what a stuck subscriber's
    buffers can take: the server's socket send buffer at its largest (tcp_wmem's maximum)
    and its transport's, before a send waits. At most STUCK_MAX_POSTS."""
    per_chat = math.ceil(STUCK_OVERFILL * (wmem_max + high_water) / STUCK_EVENT_BYTES)
    return min(per_chat * chats, STUCK_MAX_POSTS)


def _stuck_streams(
    stuck: list[StuckSocket], posted: list[tuple[int, int, float]]
) -> list[StuckStream]:
    first = posted[0][2]
    answered = {(chat, seq): at for chat, seq, at in posted}
    seqs = [last_seq(each.drained) if each.closed in CLOSED_DRAINED else None for each in stuck]
    since = stuck_times(
        [(each.chat_id, seq, each.queue_max_at) for each, seq in zip(stuck, seqs, strict=True)],
        answered,
    )
    found = []
    for each, seq, stuck_at in zip(stuck, seqs, since, strict=True):
        start = stuck_at if stuck_at is not None else first
        closed_after = drained_after = None
        if each.closed_at is not None and each.closed not in DRAINED:
            closed_after = each.closed_at - start
        if each.drain_at is not None:
            drained_after = each.drain_at - start
        found.append(
            StuckStream(
                chat=each.chat_id,
                send_queue_bytes=each.queue_max,
                stuck_after_s=None if stuck_at is None else stuck_at - first,
                closed=each.closed,
                closed_after_s=closed_after,
                drained_after_s=drained_after,
                unread_bytes=each.unread,
                drained_bytes=len(each.drained),
                drained_events=count_posted(each.drained),
                last_seq=seq,
            )
        )
    return found


def drains(found: NeverReading) -> list[tuple[float, bool]]:
    """Each stuck subscriber drained: seconds after it got stuck, whether it had been closed."""
    return [
        (each.drained_after_s, each.closed != "open")
        for each in found.stuck
        if each.drained_after_s is not None
    ]


def _log_never_reading(found: NeverReading) -> None:
    closes = Counter(each.closed for each in found.stuck)
    after = [each.closed_after_s for each in found.stuck if each.closed_after_s is not None]
    span = f", {min(after):.2f} to {max(after):.2f} s after stuck" if after else ""
    still_open, closed = close_bracket(drains(found))
    if still_open is not None or closed is not None:
        span += f"; drained: open at {still_open} s, closed at {closed} s after stuck"
    log(
        f"streams: the stuck subscribers: {dict(closes)}{span} (burst {found.burst_s:.2f} s); "
        f"{stuck_kib_per_stream(found):.0f} KiB RSS each beyond the readers-only burst; the "
        f"readers got {found.delivered:,} of {found.expected:,} events, the last "
        f"{found.catch_up_s:.2f} s after the burst"
    )


def _sysctl(name: str) -> str:
    try:
        return " ".join(Path(f"/proc/sys/{name}").read_text().split())
    except OSError:
        return "unknown"


def _raise_open_files_limit() -> None:
    """A socket per stream on each side: the soft limit up to the hard one (children inherit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
