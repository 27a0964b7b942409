"""Running the image's commands as processes on this machine, from the repository root."""

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from tests.deploy.image import REPO

COMMAND_SECONDS = 60.0  # a one-shot command: settings check, healthcheck, migration
START_SECONDS = 30.0
STOP_SECONDS = 15.0
POLL_SECONDS = 0.1


def resolve(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """argv with its program looked up on the PATH of `env`, as the container would."""
    program = shutil.which(argv[0], path=env.get("PATH", ""))
    assert program, f"{argv[0]!r} is not on the PATH {env.get('PATH')!r}"
    return [program, *argv[1:]]


def run(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, bounded in time, with its output captured."""
    try:
        return subprocess.run(
            resolve(argv, env),
            cwd=REPO,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{list(argv)} did not finish within {COMMAND_SECONDS} s: {exc.output!r}")


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


class Server:
    """The start-up command as a process, with its stdout and stderr kept in files."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        directory: Path,
        stop_signal: signal.Signals,
    ) -> None:
        self.argv = resolve(argv, env)
        self.env = dict(env)
        self.port = int(self.env["PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stop_signal = stop_signal
        self.stdout_path = directory / "server.stdout"
        self.stderr_path = directory / "server.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Server":
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=out, stderr=err
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> int:
        """Stop it as `docker stop` does (its stop signal, then a kill) and return its status."""
        assert self.process is not None, "the server was never started"
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_SECONDS)
        return self.process.returncode

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        status = None if self.process is None else self.process.poll()
        return f"server exit status {status}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"

    def wait_for(self, client: httpx.Client, path: str, status: int) -> None:
        """Poll GET `path` until it answers `status`; fail if the process exits or time runs out."""
        deadline = time.monotonic() + START_SECONDS
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the start-up command exited early\n{self.output()}")
            try:
                response = client.get(path)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if response.status_code == status:
                    return
                last = f"{response.status_code} {response.text}"
            time.sleep(POLL_SECONDS)
        pytest.fail(
            f"GET {path} did not answer {status} within {START_SECONDS} s (last: {last})\n"
            f"{self.output()}"
        )


class Recorder:
    """Every response an httpx client received, for matching against the server's log."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    def __call__(self, response: httpx.Response) -> None:
        self.responses.append(response)

    def client(self, base_url: str) -> httpx.Client:
        return httpx.Client(base_url=base_url, timeout=10, event_hooks={"response": [self]})


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each non-empty line of `text` as a JSON object; fails on a line that is not one."""
    lines: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\nin:\n{text}")
        assert isinstance(value, dict), line
        lines.append(value)
    return lines
