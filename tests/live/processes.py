"""`chatapi serve` as a process of its own, worker processes included, for the live tests."""

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from bench.procstat import children
from devtools.ports import free_port
from tests.integration.test_cli import CHATAPI, cli_env
from tests.live.sockets import server_side_holder

START_SECONDS = 30.0
STOP_SECONDS = 15.0
POLL_SECONDS = 0.05
_started = itertools.count(1)  # names each server's log, restarts on one port included


class ServeProcess:
    """`chatapi serve` on a loopback port, with its output in a file."""

    def __init__(
        self, database_url: str, directory: Path, port: int | None = None, **env: str
    ) -> None:
        """On `port`, or a free one; a fixed port lets a test restart a server in place."""
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"serve-{next(_started)}-port-{self.port}.log"
        self.env = cli_env(database_url, HOST="127.0.0.1", PORT=str(self.port), **env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> None:
        """Start it and wait until /health/ready answers 200; fail if it exits first."""
        with self.log_path.open("wb") as log:
            # A session of its own: a cleanup that has to kill takes the workers with it.
            self.process = subprocess.Popen(
                [str(CHATAPI), "serve"],
                env=self.env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        last = "no answer"
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"chatapi serve exited early\n{self.output()}")
                try:
                    response = client.get("/health/ready")
                except httpx.TransportError as error:
                    last = repr(error)
                else:
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                time.sleep(POLL_SECONDS)
        pytest.fail(f"chatapi serve not ready within {START_SECONDS} s ({last})\n{self.output()}")

    def workers(self) -> list[int]:
        """The processes serving requests: uvicorn's workers (its children) when WORKERS > 1,
        else itself."""
        return children(self.pid) or [self.pid]

    def worker_of(self, client_port: int | None) -> int:
        """The worker process holding the server's end of the test's connection from
        `client_port` (with WORKERS > 1: they accept on one socket, the kernel picks)."""
        assert client_port is not None
        workers = self.workers()
        holder = server_side_holder(self.port, client_port, workers)
        assert holder is not None, f"none of {workers} holds the connection from {client_port}"
        return holder

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops it; the caller waits for the exit."""
        assert self.process is not None, "not started"
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """Its exit status, or None if it is still running after `timeout` seconds."""
        assert self.process is not None, "not started"
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole process group if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.terminate()
            if self.wait(STOP_SECONDS) is None:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_SECONDS)
        # Workers left behind by a supervisor that died are in its group too.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def output(self) -> str:
        status = None if self.process is None else self.process.poll()
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"chatapi serve, exit status {status}, output:\n{text}"


@contextmanager
def serving(
    database_url: str, directory: Path, port: int | None = None, **env: str
) -> Iterator[ServeProcess]:
    """`chatapi serve` running with `env` besides DATABASE_URL, HOST and PORT; always stopped."""
    server = ServeProcess(database_url, directory, port, **env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
