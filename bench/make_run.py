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
"""

import sys
from pathlib import Path

from bench import server
from bench.results import MakeRun, Measurement
from bench.scenarios import Bench, log


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
        with runner.service.paused():
            runs = {
                main.name: as_run.measure(
                    f"make_run_{main.name}",
                    f"{main.label}, as `make run`",
                    main.result.script,
                    main.result.args,
                )
                for main in main_runs
            }
    except BaseException:
        print(f"--- `make run` service log (tail) ---\n{service.log_tail()}", file=sys.stderr)
        raise
    finally:
        service.stop()  # its queued request lines are written out as it stops
    written = requests_log.read_bytes()
    lines = written.count(b"\n")
    log(f"as `make run`: {lines:,} request lines ({len(written) / 2**20:.1f} MiB) on stdout")
    return MakeRun(service.workers, runs, lines, len(written))
