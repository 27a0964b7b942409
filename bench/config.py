"""What a bench run does, from the environment (every knob has a default)."""

import os
from dataclasses import dataclass


class BenchError(RuntimeError):
    """The run cannot go on, or its numbers cannot be trusted: it fails, loudly."""


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BenchError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise BenchError(f"{name} must be at least {minimum}, not {value}")
    return value


@dataclass(frozen=True)
class BenchConfig:
    duration: int  # seconds measured per wrk run (BENCH_DURATION)
    warmup: int  # seconds of an unmeasured wrk run before each measured one (BENCH_WARMUP)
    connections: int  # wrk -c (BENCH_CONNECTIONS)
    threads: int  # wrk -t (BENCH_THREADS)
    delete_pool: int  # chats loaded for the DELETE benchmark (BENCH_DELETE_POOL)
    soak_requests: int  # requests between the two RSS readings (BENCH_SOAK_REQUESTS)
    delete_window: int  # seconds of the GET run that the big delete is compared with
    quiet_wait: int  # seconds the run may spend, in all, waiting for other load to stop
    retries: int  # times a run disturbed by other load is measured again (BENCH_RETRIES)
    pin: bool  # pin the server to one CPU, wrk and PostgreSQL to the others (BENCH_PIN)
    profile: bool  # py-spy the endpoints whose target is missed (BENCH_PROFILE)

    @classmethod
    def from_env(cls) -> "BenchConfig":
        return cls(
            duration=_int("BENCH_DURATION", 10),
            warmup=_int("BENCH_WARMUP", 3),
            connections=_int("BENCH_CONNECTIONS", 32),
            threads=_int("BENCH_THREADS", 1),
            delete_pool=_int("BENCH_DELETE_POOL", 40_000),
            soak_requests=_int("BENCH_SOAK_REQUESTS", 100_000),
            delete_window=_int("BENCH_DELETE_WINDOW", 6),
            quiet_wait=_int("BENCH_QUIET_WAIT", 180, minimum=0),
            retries=_int("BENCH_RETRIES", 2, minimum=0),
            pin=os.environ.get("BENCH_PIN", "1") != "0",
            profile=os.environ.get("BENCH_PROFILE", "1") != "0",
        )


@dataclass(frozen=True)
class Pinning:
    """CPU lists for `taskset -c`; None runs unpinned."""

    server: str | None
    client: str | None  # wrk, py-spy and the delete request
    postgres: str | None

    @classmethod
    def for_machine(cls, enabled: bool) -> "Pinning":
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2:
            return cls(None, None, None)
        server, client, *rest = cpus
        # On two cores PostgreSQL shares the second one with wrk: the app server gets a
        # core of its own, which is what the service's throughput is measured against.
        postgres = ",".join(map(str, rest)) if rest else str(client)
        return cls(str(server), str(client), postgres)


def taskset(cpus: str | None, command: list[str]) -> list[str]:
    """The command, pinned to `cpus` (taskset execs it: the pid stays the command's)."""
    return ["taskset", "-c", cpus, *command] if cpus else command
