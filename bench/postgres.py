"""A throwaway PostgreSQL cluster at its default, durable settings, for the benchmark.

devtools.postgres_cluster makes the cluster (initdb in a temporary directory, as the
`postgres` user when run as root) and its standbys (pg_basebackup -R); the test suite then
starts them with fsync off, which would flatter every write here, so this module starts them
with the stock postgresql.conf instead, optionally pinned to some CPUs, and only its logging
turned up (LOG_SETTINGS), so that a stall of PostgreSQL during a run leaves its name in the
log (bench/pglog.py reads it).
"""

import subprocess
from pathlib import Path

from sqlalchemy import Engine, text

from bench.apt import ensure_command
from bench.config import BenchError, taskset
from devtools.postgres_cluster import NO_BINARIES, PostgresCluster, find_bindir

# Everything that decides how fast PostgreSQL is here; reported with the results.
REPORTED_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
    "autovacuum",
)
# What decides how a streaming standby keeps up, and how fast a read with a token is
# served there; reported for the primary and the standby side by side.
REPLICATION_SETTINGS = (
    "synchronous_commit",
    "synchronous_standby_names",
    "wal_writer_delay",
    "hot_standby",
    "hot_standby_feedback",
    "max_standby_streaming_delay",
    "wal_receiver_status_interval",
    "recovery_min_apply_delay",
    "shared_buffers",
    "max_connections",
)

# Milliseconds a statement, or a wait for a lock, must last to be logged.
SLOW_MS = 200
# What the log records beyond the stock settings: every checkpoint, every wait for a lock
# longer than deadlock_timeout, every statement slower than SLOW_MS, every autovacuum and
# autoanalyze; each line stamped in UTC to the millisecond. None of it changes how PostgreSQL
# runs the statements measured, but deadlock_timeout's other uses, earlier than the stock
# 1 s: the deadlock check of a waiting lock, and the cancelling of an autovacuum that blocks
# a lock request.
LOG_SETTINGS = {
    "log_checkpoints": "on",
    "log_lock_waits": "on",
    "deadlock_timeout": f"{SLOW_MS}ms",
    "log_min_duration_statement": f"{SLOW_MS}ms",
    "log_autovacuum_min_duration": "0",
    "log_timezone": "UTC",
    "log_line_prefix": "%m [%p] ",
}


def start_cluster(cpus: str | None, log_file: Path) -> PostgresCluster:
    """A new cluster, started at default durability; remove() it when done."""
    bindir = find_bindir()
    if bindir is None:
        ensure_command("pg_ctlcluster", "postgresql")
        bindir = find_bindir()
    if bindir is None:
        raise BenchError(NO_BINARIES)
    cluster = PostgresCluster.create(bindir)
    _start(cluster, cpus, log_file)
    return cluster


def start_standby(primary: PostgresCluster, cpus: str | None, log_file: Path) -> PostgresCluster:
    """A hot standby of the running `primary`, streaming its WAL, started at default
    durability on its copy of the primary's stock postgresql.conf; remove() it when done."""
    try:
        standby = PostgresCluster.create_standby(primary)
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"pg_basebackup failed: {exc.stderr.decode(errors='replace')}") from exc
    _start(standby, cpus, log_file)
    try:
        standby.wait_streaming()
    except BaseException:
        standby.remove()
        raise
    return standby


def _start(cluster: PostgresCluster, cpus: str | None, log_file: Path) -> None:
    """The cluster's postmaster, on its own port and socket directory; removed on failure."""
    command = [
        str(cluster.bindir / "postgres"),
        "-D",
        str(cluster.root / "data"),
        "-p",
        str(cluster.port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={cluster.root}",
        *(word for name, value in LOG_SETTINGS.items() for word in ("-c", f"{name}={value}")),
    ]
    with log_file.open("ab") as log:
        # Pinned inside runuser, so that every backend the postmaster forks is pinned too.
        cluster.process = subprocess.Popen(
            cluster.run_as(taskset(cpus, command)), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        cluster.wait_ready()
    except BaseException:
        cluster.remove()
        raise


def postmaster_pid(cluster: PostgresCluster) -> int:
    return int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])


def settings(engine: Engine, names: tuple[str, ...] = REPORTED_SETTINGS) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(:names) ORDER BY name"
            ),
            {"names": list(names)},
        ).all()
    return {row.name: _with_unit(row.setting, row.unit) for row in rows}


def _with_unit(setting: str, unit: str | None) -> str:
    """8kB pages and kB amounts as MB, the way postgresql.conf is usually read."""
    if unit == "8kB":
        return f"{int(setting) * 8 // 1024}MB"
    if unit == "kB":
        return f"{int(setting) // 1024}MB" if int(setting) >= 1024 else f"{setting}kB"
    if unit == "MB":
        return f"{setting}MB"
    return f"{setting}{unit or ''}"
