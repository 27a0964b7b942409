"""A throwaway PostgreSQL cluster at its default, durable settings, for the benchmark.

devtools.postgres_cluster makes the cluster (initdb in a temporary directory, as the
`postgres` user when run as root); the test suite then starts it with fsync off, which
would flatter every write here, so this module starts it with the stock postgresql.conf
instead, optionally pinned to some CPUs.
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


def start_cluster(cpus: str | None, log_file: Path) -> PostgresCluster:
    """A new cluster, started at default durability; remove() it when done."""
    bindir = find_bindir()
    if bindir is None:
        ensure_command("pg_ctlcluster", "postgresql")
        bindir = find_bindir()
    if bindir is None:
        raise BenchError(NO_BINARIES)
    cluster = PostgresCluster.create(bindir)
    command = [
        str(bindir / "postgres"),
        "-D",
        str(cluster.root / "data"),
        "-p",
        str(cluster.port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={cluster.root}",
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
    return cluster


def postmaster_pid(cluster: PostgresCluster) -> int:
    return int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])


def settings(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(:names) ORDER BY name"
            ),
            {"names": list(REPORTED_SETTINGS)},
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
