"""`make bench`: the whole benchmark, end to end, then docs/benchmarks.{md,json,png}.

    .venv/bin/python -m bench.run
    BENCH_ONLY=streams .venv/bin/python -m bench.run   # the event-stream scenarios only
    BENCH_ONLY=replicas .venv/bin/python -m bench.run  # the replica scenarios only
    BENCH_ONLY=auth .venv/bin/python -m bench.run      # the identity and access scenarios only
    BENCH_ONLY=delete .venv/bin/python -m bench.run    # the delete scenarios only

Starts a throwaway PostgreSQL cluster, loads the dataset, starts `chatapi serve` and the
floor, drives each endpoint with wrk, measures GET and POST again on the service started as
`make run` starts it (bench/make_run.py), runs the delete scenarios (bench/deletes.py), the
event-stream scenarios (bench/streams.py), the replica scenarios (bench/replicas.py) and the
identity and access scenarios (bench/auth.py), and writes the report, with what PostgreSQL's
log says of the run (bench/pglog.py). A run of one of those groups alone (BENCH_ONLY) puts its
numbers in place of that group's in the saved docs/benchmarks.json and keeps the rest.
Everything it starts is stopped and removed at the end, on failure and on Ctrl-C too.
"""

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from sqlalchemy import Engine, create_engine

from bench import (
    auth,
    dataset,
    machine,
    make_run,
    paging,
    pglog,
    postgres,
    procstat,
    profile,
    report,
    server,
    wrk,
)
from bench.config import BenchConfig, BenchError, Pinning
from bench.deletes import DeleteBench, wait_for_purges
from bench.replicas import ReplicaBench
from bench.results import Auth, Deletes, Profile, Results, Streams, load
from bench.scenarios import ALL_CHATS, Bench, DeletePool, log
from bench.streams import PROFILE_NAMES, StreamBench
from bench.targets import MAKE_RUN_ENDPOINTS, evaluate
from devtools.postgres_cluster import PostgresCluster
from infrastructure import migrations

DOCS = Path(__file__).resolve().parent.parent / "docs"
PURGES_LIMIT_S = 1200.0  # for the purges of the DELETE run's chats, tens of thousands of them


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # as Ctrl-C: unwinds the ExitStack, removing all it started


def _cpus(spec: str) -> set[int]:
    return {int(cpu) for cpu in spec.split(",")}


def _saved(only: str) -> Results:
    """The results of the last full run, which a run of one group of scenarios adds to."""
    saved = DOCS / "benchmarks.json"
    if not saved.exists():
        raise BenchError(f"BENCH_ONLY={only} adds to {saved}: run the whole `make bench` first")
    return load(saved)


def _floor_body(service: server.Server, work: Path) -> Path:
    """A real `GET /chats/1?limit=20` response of the service, for the floor to send."""
    sample = server.request(service.url, "GET", "/chats/1?limit=20")
    if sample.status != 200:
        raise BenchError(f"GET /chats/1?limit=20 answered {sample.status}: {sample.body[:200]!r}")
    body_file = work / "floor-body.json"
    body_file.write_bytes(sample.body)
    return body_file


@dataclass
class Stage:
    """What every run sets up first: the CPUs, wrk, a quiet machine, PostgreSQL and its data."""

    pinning: Pinning
    wrk_binary: str
    setup: wrk.WrkSetup
    quiet: procstat.QuietWaiter
    busy: float  # cores' worth of other load when the run started
    work: Path
    cluster: PostgresCluster
    engine: Engine
    data: dataset.Dataset
    pool: DeletePool
    postgres_log: Path


def prepare(config: BenchConfig, stack: ExitStack) -> Stage:
    pinning = Pinning.for_machine(config.pin)
    wrk_binary = wrk.ensure_wrk()
    if pinning.client:
        os.sched_setaffinity(0, _cpus(pinning.client))  # this harness is the client side
    quiet = procstat.QuietWaiter(config.quiet_wait)
    busy = procstat.busy_cores(2.0)
    if busy >= 0.15:
        log(f"the machine is {100 * busy:.0f}% busy (of one core): waiting for it to be quiet")
        busy = quiet.wait(120)
        if busy >= 0.15:
            log(f"WARNING: still {100 * busy:.0f}% busy; the numbers will be disturbed")
    work = Path(tempfile.mkdtemp(prefix="chatapi-bench-"))
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    postgres_log = work / "postgres.log"
    stack.callback(pglog.keep, postgres_log)  # after the cluster has stopped, before rmtree

    log(f"starting PostgreSQL (CPUs {pinning.postgres or 'all'})")
    cluster = postgres.start_cluster(pinning.postgres, postgres_log)
    stack.callback(cluster.remove)
    migrations.upgrade(cluster.url)
    engine = create_engine(cluster.url)
    stack.callback(engine.dispose)
    log("loading the dataset")
    data = dataset.load(engine, config.delete_pool)
    log(
        f"loaded {data.chats:,} chats and {data.messages:,} messages in {data.total_s:.1f} s "
        f"(inserts {data.insert_s:.1f} s, rebuild {data.rebuild_s:.1f} s, "
        f"vacuum {data.vacuum_s:.1f} s)"
    )
    setup = wrk.WrkSetup(wrk_binary, config.connections, config.threads, pinning.client)
    pool = DeletePool(engine, data)
    return Stage(
        pinning, wrk_binary, setup, quiet, busy, work, cluster, engine, data, pool, postgres_log
    )


def stream_bench(config: BenchConfig, stage: Stage) -> StreamBench:
    return StreamBench(
        config,
        stage.setup,
        stage.cluster.url,
        stage.pinning,
        postgres.postmaster_pid(stage.cluster),
        stage.pool,
        stage.quiet,
        stage.work,
        DOCS,
    )


def replica_bench(config: BenchConfig, stage: Stage) -> ReplicaBench:
    return ReplicaBench(
        config, stage.setup, stage.cluster, stage.pinning, stage.pool, stage.quiet, stage.work
    )


def auth_bench(config: BenchConfig, stage: Stage) -> auth.AuthBench:
    return auth.AuthBench(
        config,
        stage.setup,
        stage.cluster.url,
        postgres.postmaster_pid(stage.cluster),
        stage.pinning,
        stage.pool,
        stage.quiet,
        stage.work,
        DOCS,
    )


def delete_bench(config: BenchConfig, stage: Stage) -> DeleteBench:
    return DeleteBench(
        config,
        stage.setup,
        stage.cluster.url,
        postgres.postmaster_pid(stage.cluster),
        stage.pinning,
        stage.pool,
        stage.work,
        stage.postgres_log,
    )


def bench(config: BenchConfig, stack: ExitStack) -> Results:
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    stage = prepare(config, stack)
    loaded = pglog.now()
    service = server.start_service(stage.cluster.url, stage.pinning.server, stage.work)
    stack.callback(service.stop)
    body_file = _floor_body(service, stage.work)
    floor = server.start_floor(body_file, stage.pinning.server, stage.work)
    stack.callback(floor.stop)
    log(f"service pid {service.pid}, floor pid {floor.pid}, body {body_file.stat().st_size} B")

    setup, pool, quiet = stage.setup, stage.pool, stage.quiet
    postmaster = postgres.postmaster_pid(stage.cluster)
    runner = Bench(config, setup, service, postmaster, pool, quiet)
    results = Results(
        started_at=started_at,
        config=dataclasses.asdict(config),
        pinning=dataclasses.asdict(stage.pinning),
        machine={**machine.describe(stage.wrk_binary), "busy_cores_before": stage.busy},
        code=machine.code_version(DOCS.parent),
        postgres=postgres.settings(stage.engine),
        dataset=stage.data,
        floor_body_bytes=body_file.stat().st_size,
    )
    try:
        measure(runner, results, floor, stage)
        if config.profile:
            for target in evaluate(results):
                if target.passed is False and target.profile:
                    script, label, args = target.profile
                    log(f"target missed: {target.goal}; profiling {label}")
                    found = profile.record(
                        target.key.replace("_", "-"), label, service, setup, script, args, DOCS
                    )
                    if found:
                        results.profiles.append(found)
    except BaseException:
        print(f"--- service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
        raise
    service.stop()  # the scenarios below start servers of their own
    results.deletes = delete_bench(config, stage).run()
    results.streams, stream_profiles = stream_bench(config, stage).run()
    results.profiles += stream_profiles
    # Last: its base backup copies the database as the other scenarios left it, and no
    # other scenario pays for the standby's replay of their writes.
    results.replicas = replica_bench(config, stage).run()
    # After the replicas: the chats and members it adds are not copied to their standby.
    results.auth, auth_profiles = auth_bench(config, stage).run()
    results.profiles += auth_profiles
    results.config["delete_pool_grown_by"] = pool.grown_by
    results.config["runs_repeated"] = runner.repeated
    results.config["quiet_waited_s"] = round(config.quiet_wait - quiet.left, 1)
    results.total_s = time.monotonic() - started
    whole_run = pglog.Window("the whole run, from the dataset loaded on", loaded, pglog.now())
    logged = pglog.read(stage.postgres_log)
    results.postgres_log = pglog.during(logged, whole_run, keep=pglog.WHOLE_RUN_KEPT)
    return results


def streams_only(config: BenchConfig, stack: ExitStack, saved: Results) -> Results:
    """The stream scenarios alone (BENCH_ONLY=streams), in place of the saved run's."""
    stage = prepare(config, stack)
    return merged(saved, *stream_bench(config, stage).run())


def replicas_only(config: BenchConfig, stack: ExitStack, saved: Results) -> Results:
    """The replica scenarios alone (BENCH_ONLY=replicas), in place of the saved run's."""
    stage = prepare(config, stack)
    return dataclasses.replace(saved, replicas=replica_bench(config, stage).run())


def auth_only(config: BenchConfig, stack: ExitStack, saved: Results) -> Results:
    """The identity and access scenarios alone (BENCH_ONLY=auth), in place of the saved
    run's."""
    stage = prepare(config, stack)
    return merged_auth(saved, *auth_bench(config, stage).run())


def deletes_only(config: BenchConfig, stack: ExitStack, saved: Results) -> Results:
    """The delete scenarios alone (BENCH_ONLY=delete), in place of the saved run's."""
    stage = prepare(config, stack)
    return merged_deletes(saved, delete_bench(config, stage).run())


def merged_deletes(saved: Results, found: Deletes) -> Results:
    """The saved results with these delete results in place of theirs."""
    return dataclasses.replace(saved, deletes=found)


def merged_auth(saved: Results, found: Auth, profiles: list[Profile]) -> Results:
    """The saved results with these identity and access results and profiles in place of
    theirs."""
    kept = [p for p in saved.profiles if p.name not in auth.PROFILE_NAMES]
    return dataclasses.replace(saved, auth=found, profiles=kept + profiles)


def merged(saved: Results, streams: Streams, profiles: list[Profile]) -> Results:
    """The saved results with these stream results and profiles in place of theirs."""
    kept = [p for p in saved.profiles if p.name not in PROFILE_NAMES]
    return dataclasses.replace(saved, streams=streams, profiles=kept + profiles)


def measure_pages(runner: Bench, results: Results) -> None:
    """The chat list and the big chat's history, first and deep pages, before any write."""
    found = paging.find(runner.service.url, runner.pool.engine)
    log(
        f"paging: chat list cursor {found.chat_list_depth:,} chats in (of {found.chats:,}), "
        f"history cursor at message {found.history_message_id} of chat {found.history_chat}"
    )
    results.paging = found
    for name, label in paging.labels(found).items():
        results.endpoints[name] = runner.measure(name, label, "get_page.lua", [found.paths[name]])


def measure(runner: Bench, results: Results, floor: server.Server, stage: Stage) -> None:
    endpoints = results.endpoints
    endpoints["floor"] = runner.measure(
        "floor", "floor (precomputed body)", "get.lua", [*ALL_CHATS, "20"], target=floor
    )
    floor.stop()
    endpoints["get20"] = runner.measure(
        "get20", "GET /chats/{id}?limit=20", "get.lua", [*ALL_CHATS, "20"]
    )
    endpoints["get100"] = runner.measure(
        "get100", "GET /chats/{id}?limit=100", "get.lua", [*ALL_CHATS, "100"]
    )
    measure_pages(runner, results)
    # Before any POST /chats/: the pool can only grow while its ids are the newest.
    endpoints["delete"] = runner.measure_delete(endpoints["floor"].result.rps)
    # Each DELETE left a purge job, which the service's own thread works through, a commit
    # or two each: not under the runs that follow.
    log("waiting for the purges of the deleted chats")
    drained = wait_for_purges(runner.pool.engine, PURGES_LIMIT_S)
    results.config["delete_purges_drained_s"] = round(drained, 1)
    log(f"  done in {drained:.1f} s")
    endpoints["post_chat"] = runner.measure("post_chat", "POST /chats/", "post_chat.lua", [])
    endpoints["post_message"] = runner.measure(
        "post_message", "POST /chats/{id}/messages/", "post_message.lua", ALL_CHATS
    )
    # Right after the runs it repeats, before the chat-size and soak runs write more.
    main_runs = [endpoints[name] for name in MAKE_RUN_ENDPOINTS]
    results.make_run = make_run.measure(
        runner, main_runs, stage.cluster.url, stage.pinning.server, stage.work
    )
    results.chat_size["get"] = runner.chat_sizes("get")
    results.get_plans = runner.query_plans()
    results.chat_size["post"] = runner.chat_sizes("post")
    results.chat_size_after_posts = runner.message_counts()
    results.soak = runner.soak()


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    try:
        config = BenchConfig.from_env()
        with ExitStack() as stack:
            if config.only == "streams":
                results = streams_only(config, stack, _saved(config.only))
            elif config.only == "replicas":
                results = replicas_only(config, stack, _saved(config.only))
            elif config.only == "auth":
                results = auth_only(config, stack, _saved(config.only))
            elif config.only == "delete":
                results = deletes_only(config, stack, _saved(config.only))
            else:
                results = bench(config, stack)
        targets = evaluate(results)
        report.write(results, targets, DOCS)
    except BenchError as exc:
        print(f"\n\033[1;31mBENCH FAILED: {exc}\033[0m", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted; everything it started has been removed", file=sys.stderr)
        return 130
    minutes = (time.monotonic() - started) / 60
    log(f"done in {minutes:.1f} min; wrote docs/benchmarks.md, .json and .png")
    for target in targets:
        log(f"  {target.verdict:4}  {target.goal}: {target.measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
