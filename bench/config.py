"""What a bench run does, from the environment (every knob has a default)."""

import os
from dataclasses import dataclass, field, fields
from typing import Any


class BenchError(RuntimeError):
    """The run cannot go on, or its numbers cannot be trusted: it fails, loudly."""


@dataclass(frozen=True)
class Knob:
    """The environment variable that sets one field of BenchConfig, and what it means."""

    variable: str
    default: int | str  # a switch's is 1: on; a choice's is its first choice
    meaning: str
    minimum: int = 1
    switch: bool = False  # on unless the variable is "0"
    choices: tuple[str, ...] = ()  # the words a choice may be set to

    def read(self) -> Any:
        if self.switch:
            return os.environ.get(self.variable, "1") != "0"
        if self.choices:
            return _choice(self.variable, self.choices)
        return _int(self.variable, int(self.default), self.minimum)


# BenchConfig's fields: each carries its Knob, so a default is written once, where it is used.
def number(variable: str, default: int, meaning: str, minimum: int = 1) -> int:
    knob = Knob(variable, default, meaning, minimum)
    return field(default=default, metadata={"knob": knob})


def switch(variable: str, meaning: str) -> bool:
    return field(default=True, metadata={"knob": Knob(variable, 1, meaning, switch=True)})


def choice(variable: str, choices: tuple[str, ...], meaning: str) -> str:
    knob = Knob(variable, choices[0], meaning, choices=choices)
    return field(default=choices[0], metadata={"knob": knob})


def _choice(name: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "") or choices[0]
    if raw not in choices:
        raise BenchError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


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
    """Each knob declared once: its variable, default and meaning (the report lists them)."""

    duration: int = number("BENCH_DURATION", 10, "seconds of each measured wrk run")
    warmup: int = number("BENCH_WARMUP", 3, "seconds of the unmeasured warm-up run before each")
    connections: int = number("BENCH_CONNECTIONS", 32, "wrk connections (`-c`)")
    threads: int = number("BENCH_THREADS", 1, "wrk threads (`-t`)")
    delete_pool: int = number(
        "BENCH_DELETE_POOL", 40_000, "chats loaded for the DELETE benchmark (grown if short)"
    )
    soak_requests: int = number(
        "BENCH_SOAK_REQUESTS", 100_000, "requests between the two RSS readings"
    )
    delete_window: int = number(
        "BENCH_DELETE_WINDOW",
        6,
        "seconds of each GET run, just before and just after a big chat's purge, that the GETs "
        "during it are compared with",
    )
    delete_samples: int = number(
        "BENCH_DELETE_SAMPLES",
        25,
        "DELETEs timed one at a time of the big chat, and as many of 3-message chats",
    )
    purge_tunings: str = choice(
        "BENCH_PURGE_TUNINGS",
        ("missed", "always", "never"),
        "when to measure a big chat's purge again at other JOB_BATCH_SIZE and "
        "JOB_BATCH_PAUSE settings: `missed`, when it misses its GET p99 target; `always`; "
        "`never`",
    )
    quiet_wait: int = number(
        "BENCH_QUIET_WAIT",
        180,
        "seconds the run may spend, in all, waiting for other load to stop",
        minimum=0,
    )
    retries: int = number(
        "BENCH_RETRIES", 2, "times a run disturbed by other load is measured again", minimum=0
    )
    pin: bool = switch(
        "BENCH_PIN", "pin the server to one CPU, wrk and PostgreSQL to the others (0: no pinning)"
    )
    profile: bool = switch(
        "BENCH_PROFILE", "py-spy the endpoints whose target is missed (0: no profiles)"
    )
    only: str = choice(
        "BENCH_ONLY",
        ("all", "streams", "replicas", "auth", "delete"),
        "`streams`, `replicas`, `auth` or `delete`: only the event-stream, the replica, the "
        "identity and access or the delete scenarios, merged into the saved "
        "docs/benchmarks.json",
    )
    streams: int = number("BENCH_STREAMS", 1000, "event streams held open by the stream client")
    stream_chats: int = number(
        "BENCH_STREAM_CHATS", 100, "chats the streams are spread over (equally), 1..N"
    )
    post_rate: int = number(
        "BENCH_POST_RATE", 100, "posts per second while delivery latency is measured"
    )
    delivery_seconds: int = number(
        "BENCH_DELIVERY_SECONDS", 20, "seconds of posting while delivery latency is measured"
    )
    idle_seconds: int = number(
        "BENCH_IDLE_SECONDS", 30, "seconds of idle server CPU measured, without and with streams"
    )
    idle_streams: int = number(
        "BENCH_IDLE_STREAMS",
        10_000,
        "event streams held open, nothing posted, on a one-worker service of their own",
    )
    idle_chats: int = number(
        "BENCH_IDLE_CHATS", 1000, "chats those idle streams are spread over (equally), 1..N"
    )
    fresh_reads: int = number(
        "BENCH_FRESH_READS",
        1000,
        "POSTs timed, each followed by a GET with its Consistency-Token, per read target",
    )
    auth_rounds: int = number(
        "BENCH_AUTH_ROUNDS",
        3,
        "rounds of each identity and access comparison, its two sides measured in turn",
    )
    list_requests: int = number(
        "BENCH_LIST_REQUESTS",
        2000,
        "chat-list requests timed one at a time per user and round (identity and access)",
    )

    @classmethod
    def from_env(cls) -> "BenchConfig":
        return cls(**{knob.name: knob.metadata["knob"].read() for knob in fields(cls)})


def knobs() -> list[Knob]:
    """Every knob, in BenchConfig's order."""
    return [knob.metadata["knob"] for knob in fields(BenchConfig)]


@dataclass(frozen=True)
class Pinning:
    """CPU lists for `taskset -c`; None runs unpinned."""

    server: str | None
    client: str | None  # wrk, py-spy and the delete request
    postgres: str | None
    # Every CPU, for a server that may run anywhere: the harness pins itself to the client's
    # CPU, and a process it starts without taskset would inherit that.
    every: str | None = None

    @classmethod
    def for_machine(cls, enabled: bool) -> "Pinning":
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2:
            return cls(None, None, None)
        server, client, *rest = cpus
        # On two cores PostgreSQL shares the second one with wrk: the app server gets a
        # core of its own, which is what the service's throughput is measured against.
        postgres = ",".join(map(str, rest)) if rest else str(client)
        return cls(str(server), str(client), postgres, ",".join(map(str, cpus)))


def taskset(cpus: str | None, command: list[str]) -> list[str]:
    """The command, pinned to `cpus` (taskset execs it: the pid stays the command's)."""
    return ["taskset", "-c", cpus, *command] if cpus else command
