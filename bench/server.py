"""The HTTP servers under test, each in a subprocess of its own: one uvicorn worker in it, or
uvicorn's supervisor and its WORKERS worker processes."""

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench import procstat
from bench.config import BenchError, taskset
from devtools.ports import free_port
from infrastructure.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's, when run as .venv/bin/python -m bench.run
# The settings that start_service sets for the bench and `make run` leaves to their defaults:
# a server started as `make run` starts it does not take them from this harness either.
MAKE_RUN_DEFAULTS = ("ACCESS_LOG", "WORKERS")


def this_tree() -> dict[str, str]:
    """PYTHONPATH for a process of the service: this harness's tree first. `chatapi` is the
    virtualenv's script, and its editable install points at the tree that made the
    virtualenv, which need not be this one (a git worktree sharing it): without this the
    bench would measure that tree's code."""
    paths = [str(ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(path for path in paths if path))}


@dataclass
class Response:
    status: int
    body: bytes
    seconds: float  # wall time, from sending the request to the last byte of the body


def request(base_url: str, method: str, path: str, timeout: float = 60.0) -> Response:
    """One request on a fresh connection, as a client would time it."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=timeout)
    try:
        connection.connect()
        started = time.perf_counter()
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        return Response(response.status, body, time.perf_counter() - started)
    finally:
        connection.close()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_file: Path
    workers: int = 1  # above 1, the process is a supervisor: its children do the serving

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        return procstat.tree_rss_kib(self.pid) if self.workers > 1 else procstat.rss_kib(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            try:
                if request(self.url, "GET", path, timeout=5).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.name} was not ready within {timeout} s:\n{self.log_tail()}")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Its processes stopped (SIGSTOP) meanwhile, continued after: asleep, they take no
        CPU from the server measured meanwhile. The kernel keeps their connections."""
        pids = [self.pid, *procstat.children(self.pid)] if self.workers > 1 else [self.pid]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # uvicorn shuts down gracefully on SIGTERM
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    log_file: Path,
    workers: int = 1,
    output: Path | None = None,
    unset: tuple[str, ...] = (),
) -> Server:
    """The server started in the background. `output`: a file of its own for stdout (else
    stdout goes to `log_file` with stderr); `unset`: variables of this harness's environment
    that it does not inherit."""
    inherited = {key: value for key, value in os.environ.items() if key not in unset}
    with log_file.open("ab") as log, (output or log_file).open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**inherited, **env, **this_tree(), "HOST": "127.0.0.1", "PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=out if output else log,
            stderr=log if output else subprocess.STDOUT,
        )
    return Server(name, process, f"http://127.0.0.1:{port}", log_file, workers)


def start_service(
    database_url: str,
    cpus: str | None,
    log_dir: Path,
    workers: int = 1,
    settings: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
) -> Server:
    """`chatapi serve`, request log off: one uvicorn worker in the process itself, or
    `workers` processes under uvicorn's supervisor. `settings`: more of its environment;
    `unset`: settings of this harness's environment that it does not inherit."""
    env = {"DATABASE_URL": database_url, "ACCESS_LOG": "false", "WORKERS": str(workers)}
    env.update(settings or {})
    command = taskset(cpus, [str(BIN / "chatapi"), "serve"])
    name = "chatapi serve" + (f" (WORKERS={workers})" if workers > 1 else "")
    port = free_port()
    log_file = log_dir / f"service-{port}.log"
    server = _start(name, command, env, port, log_file, workers, unset=unset)
    server.wait_ready("/health/ready")
    return server


def start_as_make_run(database_url: str, cpus: str | None, log_dir: Path, output: Path) -> Server:
    """`chatapi serve` as `make run` starts it: DATABASE_URL, HOST and PORT set, and the
    settings MAKE_RUN_DEFAULTS at their defaults whatever this harness's environment says (the
    request log on; WORKERS the service's default), its stdout, where the request lines go,
    to the file `output`, as a deployment's log collector would take it. The database is
    migrated already (`make run` runs `chatapi migrate` first)."""
    workers = int(Settings.model_fields["workers"].default)
    command = taskset(cpus, [str(BIN / "chatapi"), "serve"])
    port = free_port()
    log_file = log_dir / f"service-{port}.log"  # stderr: uvicorn's and the service's own lines
    env = {"DATABASE_URL": database_url}
    server = _start(
        "chatapi serve (as `make run`)",
        command,
        env,
        port,
        log_file,
        workers,
        output=output,
        unset=MAKE_RUN_DEFAULTS,
    )
    server.wait_ready("/health/ready")
    return server


def start_floor(body_file: Path, cpus: str | None, log_dir: Path) -> Server:
    """bench.floor: the same stack answering with a precomputed body and no work at all."""
    env = {"FLOOR_BODY_FILE": str(body_file)}
    command = taskset(cpus, [sys.executable, "-m", "bench.floor"])
    server = _start("floor", command, env, free_port(), log_dir / "floor.log")
    server.wait_ready("/chats/1?limit=20")
    return server


def start_stream_floor(cpus: str | None, log_dir: Path) -> Server:
    """bench.stream_floor: a bare ASGI app fanning pre-encoded events out to its streams."""
    command = taskset(cpus, [sys.executable, "-m", "bench.stream_floor"])
    server = _start("stream floor", command, {}, free_port(), log_dir / "stream-floor.log")
    server.wait_ready("/seqs")
    return server
