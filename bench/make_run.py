"""The service as `make run` serves it: the main GET and POST runs again, request log on.

The main runs measure a service started with its request log off (ACCESS_LOG=false), so that
they measure the service's own work; a deployment runs it as `make run` does, with every
setting at its default: one JSON line per request on stdout, which a log collector reads.
Here that service (bench/server.py's start_as_make_run, stdout to a file) is pinned as the
main one and measured with the same wrk runs, right after the main POST run, for their
shares of the same floor. The main service is needed after this (a new one would change
what the soak measures), so it is stopped meanwhile (SIGSTOP) and continued after: idle on
the same CPU, it still read the hints that each POST sends to every process (PostgreSQL's
NOTIFY, kept for it meanwhile), 2-3% of that CPU which the main runs had to themselves.

Each endpoint is measured in turns (bench/auth.py's comparisons do the same): the main
service, the `make run` one, the main one, ..., the main one, each with the other stopped;
a round's ratio is the `make run` run against the mean of the main runs around it, and the
target takes the median of the rounds. A single run of each, minutes apart, read the POST
runs' own spread (1,877-2,607 req/s within one bench) as a ratio: 0.77x, where a pinned
A/B right after gave 0.93x (docs/performance.md).
"""

import statistics
import sys
from pathlib import Path

from bench import server
from bench.results import MakeRun, Measurement, Turns
from bench.scenarios import Bench, log
from bench.targets import rps, turn_ratios


def measure(
    runner: Bench, main_runs: list[Measurement], database_url: str, cpus: str | None, work: Path
) -> MakeRun:
    """The main runs again (the same wrk script and arguments), on a service of its own."""
    requests_log = work / "make-run-stdout.log"
    service = server.start_as_make_run(database_url, cpus, work, requests_log)
    try:
        log(f"as `make run`: pid {service.pid}, WORKERS={service.workers}, request log on")
        as_run = Bench(
            runner.config, runner.setup, service, runner.postmaster_pid, runner.pool, runner.quiet
        )
        as_run.repeated = runner.repeated  # one list of the runs measured again, for the report
        runs, turns = {}, {}
        for main in main_runs:
            args = (main.result.script, main.result.args)
            turn = Turns([], [])
            for _ in range(runner.config.auth_rounds):
                turn.base.append(_main_again(runner, service, main))
                with runner.service.paused():
                    label = f"{main.label}, as `make run`"
                    turn.other.append(as_run.measure(f"make_run_{main.name}", label, *args))
            turn.base.append(_main_again(runner, service, main))  # the closing run
            turns[main.name] = turn
            # The table's run: the round whose ratio is the median one.
            ratios = turn_ratios(turn, rps)
            runs[main.name] = turn.other[ratios.index(statistics.median_low(ratios))]
    except BaseException:
        print(f"--- `make run` service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
        raise
    finally:
        service.stop()  # its queued request lines are written out as it stops
    written = requests_log.read_bytes()
    lines = written.count(b"\n")
    log(f"as `make run`: {lines:,} request lines ({len(written) / 2**20:.1f} MiB) on stdout")
    return MakeRun(service.workers, runs, lines, len(written), turns)


def _main_again(runner: Bench, as_run: server.Server, main: Measurement) -> Measurement:
    """The main run again on the main service, the `make run` one stopped meanwhile."""
    with as_run.paused():
        return runner.measure(main.name, main.label, main.result.script, main.result.args)
