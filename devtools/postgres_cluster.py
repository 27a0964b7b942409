"""A throwaway PostgreSQL cluster for the tests and the benchmark, from the server binaries."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.ports import free_low_port, free_port

NO_BINARIES = "no PostgreSQL server binaries (pg_config --bindir, /usr/lib/postgresql/*/bin)"


def find_bindir() -> Path | None:
    """Where initdb and postgres live: pg_config's bindir, else the newest Debian install."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and all((Path(candidate) / tool).exists() for tool in ("initdb", "postgres")):
            return Path(candidate)
    return None


@dataclass
class PostgresCluster:
    """initdb + postgres in a temporary directory; as the `postgres` user when run as root."""

    bindir: Path
    root: Path
    port: int
    run_as: Callable[[list[str]], list[str]]
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, bindir: Path) -> "PostgresCluster":
        root, run_as = _own_directory()
        cluster = cls(bindir=bindir, root=root, port=free_port(), run_as=run_as)
        subprocess.run(
            run_as(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(root / "data"),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return cluster

    @classmethod
    def create_standby(cls, primary: "PostgresCluster") -> "PostgresCluster":
        """A hot standby of `primary` (which must be running): a base backup taken with
        `pg_basebackup -R`, so that once started it streams the primary's WAL.

        initdb's pg_hba.conf trusts replication connections from 127.0.0.1, and the
        primary's defaults (wal_level=replica, max_wal_senders=10) allow them.
        """
        root, run_as = _own_directory()
        standby = cls(bindir=primary.bindir, root=root, port=free_low_port(), run_as=run_as)
        subprocess.run(
            run_as(
                [
                    str(primary.bindir / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(primary.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(root / "data"),
                    "-R",  # standby.signal and primary_conninfo
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return standby

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.run_as(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.root / "data"),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    # A standby refuses to start with fewer than its primary's; both have 200.
                    "max_connections=200",
                    # A throwaway cluster needs no durability; it makes the suite faster.
                    # Commits stay synchronous (with fsync off, they cost a write, not a
                    # flush): a consistency token then names flushed WAL, which standbys get
                    # at once, as on a production primary.
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError("postgres exited during start-up")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {timeout} s")

    def sql(self, statement: str) -> str:
        """Runs one statement with psql on the `postgres` database; its output, unaligned."""
        out = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-XAtqc",
                statement,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def wait_streaming(self, timeout: float = 30.0) -> None:
        """Waits until this standby's WAL receiver streams from its primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sql("SELECT status FROM pg_stat_wal_receiver") == "streaming":
                return
            time.sleep(0.1)
        raise RuntimeError(f"the standby did not stream within {timeout} s")

    def set_apply_delay(self, milliseconds: int) -> None:
        """recovery_min_apply_delay on this standby: how long it holds each commit back."""
        self.sql(f"ALTER SYSTEM SET recovery_min_apply_delay = {int(milliseconds)}")
        self.sql("SELECT pg_reload_conf()")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Fast shutdown: ends open sessions instead of waiting for pooled clients to leave.
            subprocess.run(
                self.run_as(
                    [
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.root / "data"),
                        "-m",
                        "fast",
                    ]
                ),
                capture_output=True,
                timeout=60,
            )
            self.process.wait(timeout=30)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _own_directory() -> tuple[Path, Callable[[list[str]], list[str]]]:
    """A new temporary directory for a cluster, and how to run its server binaries: as the
    `postgres` user (who owns the directory) when run as root, since initdb and postgres
    refuse to run as root."""
    root = Path(tempfile.mkdtemp(prefix="chatapi-pg-"))
    if os.geteuid() != 0:
        return root, lambda cmd: cmd
    user = pwd.getpwnam("postgres")
    os.chown(root, user.pw_uid, user.pw_gid)
    return root, lambda cmd: ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def started_standby(primary: PostgresCluster) -> Iterator[PostgresCluster]:
    """A new hot standby of `primary`, streaming for the block and removed after it."""
    standby = PostgresCluster.create_standby(primary)
    try:
        standby.start()
        standby.wait_streaming()
        yield standby
    finally:
        standby.remove()


@contextmanager
def started_cluster(bindir: Path) -> Iterator[PostgresCluster]:
    """A new cluster, started for the block and removed after it, whatever happens."""
    cluster = PostgresCluster.create(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
