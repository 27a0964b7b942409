"""Runs wrk with a bench/lua script and reads the JSON line its done() hook prints."""

import json
import os
import resource
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.apt import ensure_command
from bench.config import BenchError, taskset

LUA_DIR = Path(__file__).resolve().parent / "lua"
MARKER = "BENCH_RESULT "
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


def ensure_wrk() -> str:
    return ensure_command("wrk", "wrk")


def version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True)  # exits 1
    return (out.stdout + out.stderr).strip().splitlines()[0]


@dataclass(frozen=True)
class WrkSetup:
    binary: str
    connections: int
    threads: int
    cpus: str | None
    timeout_s: int = 30  # a slow response is latency to measure, not an error
    # Sent as every request's Authorization header (bench/lua/common.lua), e.g. "Bearer
    # <a user's token>"; None sends none. Passed in wrk's environment, so that it is not
    # in the command line the results keep.
    authorization: str | None = None


@dataclass
class WrkResult:
    script: str
    args: list[str]
    command: list[str]
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]
    extra: dict[str, float] = field(default_factory=dict)
    wrk_cpu_s: float = 0.0
    output: str = ""

    @property
    def failed(self) -> bool:
        return any(self.errors.values())

    def describe_errors(self) -> str:
        parts = [f"{count} {kind}" for kind, count in self.errors.items() if count]
        status = self.errors.get("status", 0)
        if status:
            parts.append(f"({status} responses were not 2xx/3xx)")
        return ", ".join(parts)


def command(
    setup: WrkSetup, base_url: str, script: str, args: list[str], duration_s: int
) -> list[str]:
    wrk = [
        setup.binary,
        f"-t{setup.threads}",
        f"-c{setup.connections}",
        f"-d{duration_s}s",
        f"--timeout={setup.timeout_s}s",
        "--latency",
        "-s",
        str(LUA_DIR / script),
        base_url,
    ]
    return taskset(setup.cpus, [*wrk, "--", *args] if args else wrk)


def _env(setup: WrkSetup) -> dict[str, str]:
    return {
        **os.environ,
        "LUA_PATH": f"{LUA_DIR}/?.lua;;",
        "WRK_THREADS": str(setup.threads),
        "BENCH_AUTHORIZATION": setup.authorization or "",
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse(output: str, script: str, args: list[str], cmd: list[str]) -> WrkResult:
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise BenchError(f"wrk printed no {MARKER.strip()} line:\n{output}")
    data: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    requests = int(data.pop("requests"))
    duration_s = data.pop("duration_us") / 1e6
    data.pop("bytes")
    errors = {kind: int(data.pop(f"errors_{kind}")) for kind in ERROR_KINDS}

    def ms(name: str) -> float:
        value = data.pop(name)
        return float(value) / 1000 if value is not None else float("nan")

    return WrkResult(
        script=script,
        args=args,
        command=cmd,
        requests=requests,
        duration_s=duration_s,
        rps=requests / duration_s if duration_s else 0.0,
        p50_ms=ms("p50_us"),
        p90_ms=ms("p90_us"),
        p99_ms=ms("p99_us"),
        p999_ms=ms("p999_us"),
        max_ms=ms("latency_max_us"),
        mean_ms=ms("latency_mean_us"),
        errors=errors,
        extra={name: float(value) for name, value in data.items() if value is not None},
        output=output,
    )


def run(setup: WrkSetup, base_url: str, script: str, args: list[str], duration_s: int) -> WrkResult:
    cmd = command(setup, base_url, script, args, duration_s)
    cpu_before = _children_cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(setup))
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    result = parse(out.stdout, script, args, cmd)
    result.wrk_cpu_s = _children_cpu_seconds() - cpu_before
    return result


class Background:
    """A wrk run in the background, stopped early with SIGINT (wrk then reports as usual)."""

    def __init__(
        self, setup: WrkSetup, base_url: str, script: str, args: list[str], limit_s: int
    ) -> None:
        self._script, self._args = script, args
        self._cmd = command(setup, base_url, script, args, limit_s)
        self._cpu_before = _children_cpu_seconds()
        self._process = subprocess.Popen(
            self._cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(setup)
        )

    def stop(self) -> WrkResult:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        return self.result()

    def result(self, timeout_s: float = 60) -> WrkResult:
        """The run's result, once wrk has ended: stopped, or at the end of its duration."""
        stdout, stderr = self._process.communicate(timeout=timeout_s)
        if self._process.returncode not in (0, -signal.SIGINT):
            raise BenchError(f"wrk failed ({self._process.returncode}):\n{stderr}")
        result = parse(stdout, self._script, self._args, self._cmd)
        result.wrk_cpu_s = _children_cpu_seconds() - self._cpu_before
        return result

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
