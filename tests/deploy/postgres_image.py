"""The postgres:15 image's primary and the compose file's hot standby, as processes here.

With no Docker engine, the clusters come from this machine's PostgreSQL server binaries,
made as the image's entrypoint makes them (initdb as POSTGRES_USER with POSTGRES_PASSWORD,
its `host all all all <password_encryption>` line, POSTGRES_DB, then the scripts of
/docker-entrypoint-initdb.d/). The scripts of deploy/ run with /bin/sh, as the postgres
user, with the Compose service's environment; only places change: a temporary directory
for the volume, 127.0.0.1 and a free port for the host `db`, a socket directory of its own.

In Compose the standby connects from another address of the network, which none of
initdb's loopback lines (`host ... 127.0.0.1/32 trust`) match: they are left out here, so
that a connection from 127.0.0.1 meets the lines a container's connection meets.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools.ports import free_port
from devtools.postgres_cluster import _own_directory

START_SECONDS = 60.0
POLL_SECONDS = 0.1
COMMAND_SECONDS = 60.0
IMAGE_HBA_LINE = "host all all all scram-sha-256"  # pg_setup_hba_conf, PostgreSQL 14 and up
SOURCED_AND_GONE_ON = "the entrypoint goes on"

RunAs = Callable[[list[str]], list[str]]


def script_env(bindir: Path, environment: Mapping[str, str], **places: str) -> list[str]:
    """`env -i NAME=value ...`: a container's environment, nothing inherited from here."""
    values = {
        **environment,
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **places,
    }
    return ["env", "-i", *(f"{name}={value}" for name, value in values.items())]


def mounted(script: Path, root: Path) -> Path:
    """`script` copied into `root` and owned as `root` is, as a bind mount shows it to the
    container's user: the checkout itself may be in a directory that user cannot enter."""
    copy = root / script.name
    shutil.copyfile(script, copy)
    copy.chmod(script.stat().st_mode & 0o755)
    shutil.chown(copy, user=root.owner(), group=root.group())
    return copy


# Where commands run as postgres start: the checkout may be a directory it cannot enter.
ANYONES_DIRECTORY = "/"


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
        cwd=ANYONES_DIRECTORY,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"{result.args}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


def wait_ready(
    bindir: Path, port: int, process: subprocess.Popen[bytes], output: Callable[[], str]
) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} while starting\n{output()}")
        ready = run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)])
        if ready.returncode == 0:
            return
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"no connections accepted within {START_SECONDS} s\n{output()}")


def stop(bindir: Path, run_as: RunAs, data: Path, process: subprocess.Popen[bytes]) -> None:
    """A fast shutdown, as the image's STOPSIGNAL (SIGINT) asks for."""
    if process.poll() is None:
        run(run_as([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast"]))
        process.wait(timeout=COMMAND_SECONDS)


@dataclass
class Primary:
    """The db service: a cluster made as the image makes one in an empty volume."""

    bindir: Path
    environment: dict[str, str]  # the db service's
    root: Path
    run_as: RunAs
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def user(self) -> str:
        return self.environment.get("POSTGRES_USER", "postgres")

    @property
    def hba(self) -> Path:
        return self.data / "pg_hba.conf"

    @classmethod
    def create(cls, bindir: Path, environment: Mapping[str, str]) -> "Primary":
        root, run_as = _own_directory()
        primary = cls(bindir, dict(environment), root, run_as)
        password = root / "password"
        password.write_text(primary.environment["POSTGRES_PASSWORD"] + "\n")
        initdb = run(
            run_as(
                [
                    str(bindir / "initdb"),
                    f"--username={primary.user}",
                    f"--pwfile={password}",
                    "-D",
                    str(primary.data),
                    "--no-sync",
                ]
            )
        )
        assert initdb.returncode == 0, describe(initdb)
        password.unlink()
        kept = [
            line
            for line in primary.hba.read_text().splitlines()
            if not line.startswith("host")  # initdb's loopback lines: see the module's doc
        ]
        primary.hba.write_text("\n".join([*kept, "", IMAGE_HBA_LINE, ""]))
        return primary

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.run_as(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    "fsync=off",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ANYONES_DIRECTORY,
        )
        wait_ready(self.bindir, self.port, self.process, lambda: "the primary")

    def create_database(self) -> None:
        """docker_setup_db: POSTGRES_DB, made by the image before the first-start scripts."""
        database = self.environment.get("POSTGRES_DB", self.user)
        self.sql(f'CREATE DATABASE "{database}"', database="postgres")

    def sql(self, statement: str, database: str = "postgres") -> str:
        """One statement as POSTGRES_USER over the socket (which `local ... trust` lets in)."""
        result = run(
            [
                str(self.bindir / "psql"),
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-XAtqc",
                statement,
            ]
        )
        assert result.returncode == 0, describe(result)
        return result.stdout.strip()

    def run_script(self, script: Path, sourced: bool = False) -> subprocess.CompletedProcess[str]:
        """A /docker-entrypoint-initdb.d/ script as the entrypoint runs it: as postgres, with
        the service's environment, PGDATA, and psql reaching the server by its socket.

        Executable, it runs with its #! line, /bin/sh; else the entrypoint (bash, `set -Eeo
        pipefail`) sources it, and must go on after it: then it prints SOURCED_AND_GONE_ON.
        """
        env = script_env(
            self.bindir,
            self.environment,
            PGDATA=str(self.data),
            PGHOST=str(self.root),
            PGPORT=str(self.port),
        )
        script = mounted(script, self.root)
        if not sourced:
            return run(self.run_as([*env, "/bin/sh", str(script)]))
        entrypoint = f'set -Eeo pipefail; . "$0"; echo {SOURCED_AND_GONE_ON}'
        return run(self.run_as([*env, "bash", "-c", entrypoint, str(script)]))

    def stop(self) -> None:
        if self.process is not None:
            stop(self.bindir, self.run_as, self.data, self.process)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Standby:
    """The db-replica service: its entrypoint and command, over a volume of its own."""

    bindir: Path
    environment: dict[str, str]  # the db-replica service's
    mount: str  # where the volume is mounted in the container
    root: Path
    run_as: RunAs
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, bindir: Path, environment: Mapping[str, str], mount: str) -> "Standby":
        root, run_as = _own_directory()
        standby = cls(bindir, dict(environment), mount, root, run_as)
        # A new volume gets the image's directory as it is: the postgres user's, mode 1777.
        standby.volume.mkdir()
        os.chmod(standby.volume, 0o1777)
        shutil.chown(standby.volume, user=standby.root.owner(), group=standby.root.group())
        return standby

    @property
    def volume(self) -> Path:
        return self.root / "volume"

    def here(self, path: str) -> Path:
        """A path in the container's volume, on this machine."""
        relative = Path(path).relative_to(self.mount)
        return self.volume / relative

    @property
    def data(self) -> Path:
        return self.here(self.environment["PGDATA"])

    @property
    def stdout(self) -> Path:
        return self.root / "entrypoint.stdout"

    @property
    def stderr(self) -> Path:
        return self.root / "entrypoint.stderr"

    def output(self) -> str:
        status = None if self.process is None else self.process.poll()
        return (
            f"standby exit status {status}\nstdout:\n{self.stdout.read_text(errors='replace')}"
            f"\nstderr:\n{self.stderr.read_text(errors='replace')}"
        )

    def start(self, entrypoint: Sequence[str], command: Sequence[str], primary: Primary) -> None:
        """`entrypoint` + `command` (the script's path mapped here by the caller), with the
        primary's host and port in place of `db`'s; postgres gets this machine's places."""
        env = script_env(
            self.bindir,
            self.environment,
            PGDATA=str(self.data),
            PRIMARY_HOST="127.0.0.1",
            PGPORT=str(primary.port),  # the primary's; the server's own is given it by -p
        )
        places = [
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.root}",
        ]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                self.run_as([*env, *entrypoint, *command, *places]),
                stdout=out,
                stderr=err,
                cwd=ANYONES_DIRECTORY,
            )
        wait_ready(self.bindir, self.port, self.process, self.output)

    def sql(self, statement: str, user: str, database: str) -> str:
        result = run(
            [
                str(self.bindir / "psql"),
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                database,
                "-XAtqc",
                statement,
            ]
        )
        assert result.returncode == 0, f"{describe(result)}\n{self.output()}"
        return result.stdout.strip()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.bindir, self.run_as, self.data, self.process)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
