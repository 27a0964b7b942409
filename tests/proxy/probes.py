"""Hostile clients by the thousand on raw sockets, and what a normal client meanwhile sees.

Hostile clients connect from addresses in 127.0.0.0/8 (all of it loopback), each from one of
its own unless a probe says otherwise, as many different machines would: the per-address
limits of deploy/nginx.conf then let every one of them in, and what holds them off is what
the probe is about (the timeouts, the buffering). The normal client comes from 127.0.0.1 and
opens a new connection for every request, as the most exposed kind of client does.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import httpx

from bench.procstat import rss_kib, tree_rss_kib
from tests.live.processes import ServeProcess

# tcpi_state, the first byte of struct tcp_info: anything but ESTABLISHED means the peer
# has closed (CLOSE_WAIT after a FIN, CLOSE after a reset).
TCP_ESTABLISHED = 1
TCP_INFO_BYTES = 8
NORMAL_PACE_SECONDS = 0.05  # 20 requests a second: well under the per-address rates
NORMAL_TIMEOUT_SECONDS = 5.0
NORMAL_P99_SECONDS = 1.0
MONITOR_SECONDS = 0.25
MIN_PROBE_SECONDS = 2.0
RSS_GROWTH_KIB = 100 * 1024
TCP_TABLE = "/proc/net/tcp"
ESTABLISHED_HEX = "01"


def hostile_addresses(block: int, count: int) -> list[str]:
    """`count` loopback addresses of hostile clients; `block` keeps probes apart."""
    return [f"127.{block}.{index // 250}.{index % 250 + 1}" for index in range(count)]


def connect_from(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, 0))
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def open_sockets(port: int, addresses: list[str]) -> list[socket.socket]:
    """A connection to `port` from each of `addresses`."""
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sockets.append(connect_from(address, port))
    except OSError:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def peer_closed(sock: socket.socket) -> bool:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    return bool(info[0] != TCP_ESTABLISHED)


def wait_closed_by_peer(
    sockets: list[socket.socket],
    seconds: float,
    drip: bytes = b"",
    drip_every: float = 2.0,
) -> list[float]:
    """When each socket was closed by the other end (seconds from now), waiting `seconds`
    at most; with `drip`, each open socket sends one more byte of it every `drip_every`
    seconds meanwhile. Sockets still open at the end are left out of the list."""
    started = time.monotonic()
    open_ones = dict(enumerate(sockets))
    closed_after: list[float] = []
    sent = 0
    next_drip = started + drip_every
    while open_ones and time.monotonic() - started < seconds:
        now = time.monotonic()
        for index, sock in list(open_ones.items()):
            if peer_closed(sock):
                closed_after.append(now - started)
                del open_ones[index]
        if drip and now >= next_drip and sent < len(drip):
            for sock in open_ones.values():
                with suppress(OSError):  # closed meanwhile: seen on the next round
                    sock.send(drip[sent : sent + 1], socket.MSG_DONTWAIT)
            sent += 1
            next_drip += drip_every
        time.sleep(0.2)
    return closed_after


@dataclass
class Sample:
    app_rss_kib: int
    app_connections: int
    nginx_rss_kib: int


def app_connections(app_port: int) -> int:
    """Established TCP connections whose server end is the app's listening port."""
    count = 0
    with open(TCP_TABLE) as table:
        next(table)
        for line in table:
            fields = line.split(None, 4)
            if fields[3] == ESTABLISHED_HEX and int(fields[1].rsplit(":", 1)[1], 16) == app_port:
                count += 1
    return count


@dataclass
class Figures:
    """What one probe measured, for its assertions and the summary at the end of the run."""

    probe: str
    hostile: int
    # False where the hostile load is a matter of the app's capacity, not of the proxy:
    # what the normal client sees is then measured, not bounded; the app's memory still is.
    normal_bounded: bool = True
    note: str = ""  # what became of the hostile clients, for the summary
    normal_latencies: list[float] = field(default_factory=list)
    normal_failures: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    app_rss_before_kib: int = 0
    app_rss_after_kib: int = 0
    seconds: float = 0.0

    @property
    def normal_requests(self) -> int:
        return len(self.normal_latencies) + len(self.normal_failures)

    @property
    def normal_p99(self) -> float:
        ordered = sorted(self.normal_latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    @property
    def app_rss_peak_kib(self) -> int:
        return max((s.app_rss_kib for s in self.samples), default=self.app_rss_before_kib)

    @property
    def app_connections_peak(self) -> int:
        return max((s.app_connections for s in self.samples), default=0)

    @property
    def nginx_rss_peak_kib(self) -> int:
        return max((s.nginx_rss_kib for s in self.samples), default=0)

    def row(self) -> str:
        mib = 1024
        succeeded = self.normal_requests - len(self.normal_failures)
        return (
            f"| {self.probe} | {self.hostile:,} | {succeeded}"
            f"/{self.normal_requests} | {self.normal_p99 * 1000:.0f} ms "
            f"| {self.app_rss_before_kib / mib:.0f} → {self.app_rss_peak_kib / mib:.0f} "
            f"→ {self.app_rss_after_kib / mib:.0f} MiB | {self.app_connections_peak} "
            f"| {self.nginx_rss_peak_kib / mib:.0f} MiB | {self.seconds:.1f} s | {self.note} |"
        )

    def check(self) -> None:
        """The app's memory held, and a normal client's every request succeeded, quickly."""
        growth = self.app_rss_peak_kib - self.app_rss_before_kib
        assert growth < RSS_GROWTH_KIB, f"{self.probe}: the app grew by {growth} KiB"
        if not self.normal_bounded:
            return
        assert self.normal_requests >= 10, f"{self.probe}: the normal client hardly ran"
        assert not self.normal_failures, (
            f"{self.probe}: {len(self.normal_failures)} of {self.normal_requests} normal "
            f"requests failed: {self.normal_failures[:5]}"
        )
        p99 = self.normal_p99
        assert p99 < NORMAL_P99_SECONDS, f"{self.probe}: p99 {p99:.2f} s"


SUMMARY: list[Figures] = []
SUMMARY_HEADER = (
    "| probe | hostile clients | normal requests ok | normal p99 | app RSS before → peak → after "
    "| app connections, peak | nginx RSS, peak | duration | hostile clients' fate |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


class NormalClient:
    """GET a chat and post to it, alternately three to one, a new connection each time."""

    def __init__(self, base_url: str, chat_id: int, figures: Figures) -> None:
        self.base_url = base_url
        self.chat_id = chat_id
        self.figures = figures
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(
            base_url=self.base_url, timeout=NORMAL_TIMEOUT_SECONDS, limits=limits
        ) as http:
            turn = 0
            while not self.stopping.is_set():
                self.request(http, turn)
                turn += 1
                self.stopping.wait(NORMAL_PACE_SECONDS)

    def request(self, http: httpx.Client, turn: int) -> None:
        path = f"/chats/{self.chat_id}"
        started = time.monotonic()
        try:
            if turn % 4 == 3:
                response = http.post(f"{path}/messages/", json={"text": f"normal {turn}"})
                expected = 201
            else:
                response = http.get(path)
                expected = 200
        except httpx.HTTPError as error:
            self.figures.normal_failures.append(repr(error))
            return
        if response.status_code != expected:
            self.figures.normal_failures.append(f"{response.status_code} {response.text[:200]}")
            return
        self.figures.normal_latencies.append(time.monotonic() - started)


class Monitor:
    """Samples the app's memory and connections, and nginx's memory, while a probe runs."""

    def __init__(self, app_pid: int, app_port: int, nginx_pid: int, figures: Figures) -> None:
        self.app_pid = app_pid
        self.app_port = app_port
        self.nginx_pid = nginx_pid
        self.figures = figures
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.figures.samples.append(
                Sample(
                    rss_kib(self.app_pid),
                    app_connections(self.app_port),
                    tree_rss_kib(self.nginx_pid),
                )
            )
            self.stopping.wait(MONITOR_SECONDS)


@contextmanager
def probing(
    figures: Figures, proxy_url: str, chat_id: int, app: ServeProcess, nginx_pid: int
) -> Iterator[Figures]:
    """A normal client and the monitor run for the whole block, filling in `figures`.

    The figures are checked (`Figures.check`) and kept for the summary once the block ends.
    """
    figures.app_rss_before_kib = rss_kib(app.pid)
    normal = NormalClient(proxy_url, chat_id, figures)
    monitor = Monitor(app.pid, app.port, nginx_pid, figures)
    started = time.monotonic()
    normal.thread.start()
    monitor.thread.start()
    try:
        yield figures
        # A probe over at once (a refused header) still has the normal client around it.
        time.sleep(max(0.0, started + MIN_PROBE_SECONDS - time.monotonic()))
    finally:
        for each in (normal, monitor):
            each.stopping.set()
        for each in (normal, monitor):
            each.thread.join(timeout=NORMAL_TIMEOUT_SECONDS * 2)
        figures.seconds = time.monotonic() - started
        figures.app_rss_after_kib = rss_kib(app.pid)
    SUMMARY.append(figures)
    figures.check()


def status_of(head: bytes) -> int:
    """The status code on the first line of a raw HTTP/1.1 response."""
    return int(head.split(b"\r\n", 1)[0].split(b" ")[1])
