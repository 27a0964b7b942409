"""What /proc says about a process: resident memory and CPU time."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name, in parentheses, may contain spaces: split after its closing one.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children, live or exited (the postmaster's backends).

    Exited children count through the process's cutime and cstime: a backend forked for a
    new connection and gone by the end of a run still counts.
    """
    fields = _stat_fields(pid)
    total = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    for each in [pid, *children(pid)]:
        try:
            total += cpu_seconds(each)
        except OSError:
            continue
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def system_cpu_seconds() -> tuple[float, float]:
    """CPU time the whole machine has spent busy, and stolen by the hypervisor, so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq
    return busy / CLOCK_TICKS, steal / CLOCK_TICKS


def busy_cores(seconds: float) -> float:
    """How many cores' worth of CPU the machine spends over `seconds` (0 when idle)."""
    before, _ = system_cpu_seconds()
    time.sleep(seconds)
    after, _ = system_cpu_seconds()
    return (after - before) / seconds


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its live children (uvicorn's worker processes)."""
    total = rss_kib(pid)
    for child in children(pid):
        try:
            total += rss_kib(child)
        except (OSError, RuntimeError):
            continue  # exited while we looked
    return total


@dataclass(frozen=True)
class CpuUsage:
    """CPU spent over a run, in per cent of one core."""

    server_pct: float
    postgres_pct: float  # the postmaster and all its backends
    wrk_pct: float  # the run's load generator: wrk, or the steady poster
    other_pct: float  # everything else on the machine: should be about 0
    steal_pct: float  # taken by the hypervisor from this virtual machine
    clients_pct: float = 0.0  # the clients holding event streams open during the run, or
    # another process of the bench running beside it (an idle server: see bench/auth.py)
    standby_pct: float = 0.0  # a streaming standby's postmaster and all its processes

    @property
    def busy_pct(self) -> float:
        """The whole machine's CPU over the run (of cores x 100%), the hypervisor's steal aside."""
        servers = self.server_pct + self.postgres_pct + self.standby_pct
        return servers + self.wrk_pct + self.clients_pct + self.other_pct


Snapshot = tuple[float, float, float, float, float, float, float]


class CpuMeter:
    """Snapshots of the CPU time of the server, PostgreSQL and the machine as a whole.

    `server_tree` counts the server's child processes too (uvicorn with WORKERS > 1 is a
    supervisor and its workers). `client_pids` are further processes of the bench that run
    beside wrk (the stream client, an idle server): their CPU is theirs, not `other` load
    that voids a run.
    `standby_pid` is a streaming standby's postmaster: PostgreSQL too, counted apart.
    """

    def __init__(self, server_pid: int, postmaster_pid: int, server_tree: bool = False) -> None:
        self.server_pid = server_pid
        self.postmaster_pid = postmaster_pid
        self.server_tree = server_tree
        self.client_pids: list[int] = []
        self.standby_pid: int | None = None

    def _clients(self) -> float:
        total = 0.0
        for pid in self.client_pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue  # exited: it was running beside the run only until then
        return total

    def snapshot(self) -> Snapshot:
        busy, steal = system_cpu_seconds()
        read = tree_cpu_seconds if self.server_tree else cpu_seconds
        server = read(self.server_pid)
        postgres = tree_cpu_seconds(self.postmaster_pid)
        standby = tree_cpu_seconds(self.standby_pid) if self.standby_pid else 0.0
        return time.monotonic(), server, postgres, self._clients(), standby, busy, steal

    def usage(self, start: Snapshot, wrk_s: float) -> CpuUsage:
        end = self.snapshot()
        deltas = (b - a for a, b in zip(start, end, strict=True))
        wall, server, pg, clients, standby, busy, steal = deltas
        return CpuUsage(
            server_pct=100 * server / wall,
            postgres_pct=100 * pg / wall,
            wrk_pct=100 * wrk_s / wall,
            other_pct=max(0.0, 100 * (busy - server - pg - clients - standby - wrk_s) / wall),
            steal_pct=100 * steal / wall,
            clients_pct=100 * clients / wall,
            standby_pct=100 * standby / wall,
        )


def wait_quiet(max_s: float, threshold: float = 0.15) -> float:
    """Waits (up to max_s) until the machine is near idle; returns how busy it last was."""
    deadline = time.monotonic() + max_s
    busy = busy_cores(1.0)
    while busy >= threshold and time.monotonic() < deadline:
        busy = busy_cores(2.0)
    return busy


class QuietWaiter:
    """wait_quiet within a budget of seconds for the whole run, so that waits stay bounded."""

    def __init__(self, budget_s: float) -> None:
        self.left = budget_s

    def wait(self, max_s: float = 60.0) -> float:
        started = time.monotonic()
        busy = wait_quiet(max(0.0, min(max_s, self.left)))
        self.left -= time.monotonic() - started
        return busy
