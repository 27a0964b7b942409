"""`make bench`: the whole benchmark, end to end, then docs/benchmarks.{md,json,png}.

    .venv/bin/python -m bench.run

Starts a throwaway PostgreSQL cluster, loads the dataset, starts `chatapi serve` and the
floor, drives each endpoint with wrk, and writes the report. Everything it starts is
stopped and removed at the end, on failure and on Ctrl-C too.
"""

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from sqlalchemy import create_engine

from bench import dataset, machine, paging, postgres, procstat, profile, report, server, wrk
from bench.config import BenchConfig, BenchError, Pinning
from bench.results import Results
from bench.scenarios import ALL_CHATS, Bench, DeletePool, log
from bench.targets import evaluate
from infrastructure import migrations

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # as Ctrl-C: unwinds the ExitStack, removing all it started


def _cpus(spec: str) -> set[int]:
    return {int(cpu) for cpu in spec.split(",")}


def _floor_body(service: server.Server, work: Path) -> Path:
    """A real `GET /chats/1?limit=20` response of the service, for the floor to send."""
    sample = server.request(service.url, "GET", "/chats/1?limit=20")
    if sample.status != 200:
        raise BenchError(f"GET /chats/1?limit=20 answered {sample.status}: {sample.body[:200]!r}")
    body_file = work / "floor-body.json"
    body_file.write_bytes(sample.body)
    return body_file


def bench(config: BenchConfig, stack: ExitStack) -> Results:
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
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

    log(f"starting PostgreSQL (CPUs {pinning.postgres or 'all'})")
    cluster = postgres.start_cluster(pinning.postgres, work / "postgres.log")
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

    service = server.start_service(cluster.url, pinning.server, work)
    stack.callback(service.stop)
    body_file = _floor_body(service, work)
    floor = server.start_floor(body_file, pinning.server, work)
    stack.callback(floor.stop)
    log(f"service pid {service.pid}, floor pid {floor.pid}, body {body_file.stat().st_size} B")

    setup = wrk.WrkSetup(wrk_binary, config.connections, config.threads, pinning.client)
    pool = DeletePool(engine, data)
    runner = Bench(config, setup, service, postgres.postmaster_pid(cluster), pool, quiet)
    results = Results(
        started_at=started_at,
        config=dataclasses.asdict(config),
        pinning=dataclasses.asdict(pinning),
        machine={**machine.describe(wrk_binary), "busy_cores_before": busy},
        code=machine.code_version(DOCS.parent),
        postgres=postgres.settings(engine),
        dataset=data,
        floor_body_bytes=body_file.stat().st_size,
    )
    try:
        measure(runner, results, floor)
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
        results.big_delete = runner.big_delete()
    except BaseException:
        print(f"--- service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
        raise
    results.config["delete_pool_grown_by"] = pool.grown_by
    results.config["runs_repeated"] = runner.repeated
    results.config["quiet_waited_s"] = round(config.quiet_wait - quiet.left, 1)
    results.total_s = time.monotonic() - started
    return results


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


def measure(runner: Bench, results: Results, floor: server.Server) -> None:
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
    endpoints["post_chat"] = runner.measure("post_chat", "POST /chats/", "post_chat.lua", [])
    endpoints["post_message"] = runner.measure(
        "post_message", "POST /chats/{id}/messages/", "post_message.lua", ALL_CHATS
    )
    results.chat_size["get"] = runner.chat_sizes("get")
    results.get_plans = runner.query_plans()
    results.chat_size["post"] = runner.chat_sizes("post")
    results.chat_size_after_posts = runner.message_counts()
    results.soak = runner.soak()


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        config = BenchConfig.from_env()
        with ExitStack() as stack:
            results = bench(config, stack)
        targets = evaluate(results)
        report.write(results, targets, DOCS)
    except BenchError as exc:
        print(f"\n\033[1;31mBENCH FAILED: {exc}\033[0m", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted; everything it started has been removed", file=sys.stderr)
        return 130
    log(f"done in {results.total_s / 60:.1f} min; wrote docs/benchmarks.md, .json and .png")
    for target in targets:
        log(f"  {target.verdict:4}  {target.goal}: {target.measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
