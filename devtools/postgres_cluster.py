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

from devtools.ports import free_port

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
        root = Path(tempfile.mkdtemp(prefix="chatapi-pg-"))
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)

            def run_as(cmd: list[str]) -> list[str]:
                return ["runuser", "-u", "postgres", "--", *cmd]
        else:

            def run_as(cmd: list[str]) -> list[str]:
                return cmd

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
                    "max_connections=200",
                    # A throwaway cluster needs no durability; it makes the suite faster.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
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


@contextmanager
def started_cluster(bindir: Path) -> Iterator[PostgresCluster]:
    """A new cluster, started for the block and removed after it, whatever happens."""
    cluster = PostgresCluster.create(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
