"""Subscribers that never read: raw sockets that take an event stream's response head, then
nothing, so that the server's sends to them fill the socket buffers and wait.

Each has a small receive buffer (SO_RCVBUF, set before it connects). While they are stuck the
harness watches them without reading them, from both ends: the server's side of each
connection in /proc/net/tcp (its send queue: the bytes the kernel holds for it; its state:
a close by the server takes it out of ESTABLISHED), and the subscriber's side with poll (a
reset or an end of the stream shows there without a read).

A server that gives up on a subscriber may also just stop writing to it and leave the bytes
it had taken to be sent when they can (a graceful close): then nothing shows until someone
reads. So each socket is drained, at last, at its own time after it got stuck (spread from
half STREAM_SEND_TIMEOUT to twice it, drain_delays): one that the server had given up on
ends (EOF) once drained; one it had not goes on as a stream. The latest drain still open and
the earliest one closed bracket when the server gives up (close_bracket).
"""

import fcntl
import re
import select
import socket
import statistics
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from bench.config import BenchError
from bench.results import NeverReading, StuckStream

POSTED = b"event: message.posted"
EVENT_ID = re.compile(rb"(?:^|\n)id: (\d+)\r?\n")
CLOSED_FLAGS = select.POLLHUP | select.POLLERR | select.POLLRDHUP
FIONREAD = 0x541B  # ioctl: bytes in a socket's receive queue (Linux)
ESTABLISHED = "01"  # a socket's state in /proc/net/tcp
TCP_TABLE = Path("/proc/net/tcp")
CONNECT_TIMEOUT_S = 10.0
READ_SIZE = 65536
READS_AT_ONCE = 16
STUCK_SHARE = 0.98


def count_posted(body: bytes | bytearray) -> int:
    """message.posted events in a stream's bytes (one chunk holds whole events only)."""
    return body.count(POSTED)


def last_seq(body: bytes | bytearray) -> int | None:
    """The id of the last event in a stream's bytes (None: no event)."""
    found = EVENT_ID.findall(body)
    return int(found[-1]) if found else None


def stuck_times(
    stuck: Sequence[tuple[int, int | None, float | None]], answered: dict[tuple[int, int], float]
) -> list[float | None]:
    """When each stuck subscriber's send began to wait, from (chat, the last seq it was sent,
    when its send queue filled): the 201 of the post of that seq, the one whose send waited
    (what a server takes to send is sent, so the last event drained is that one); for one
    whose last seq is not known (not closed after a drain), the median of its chat's others;
    failing that, when its send queue filled."""
    known = [answered.get((chat, seq)) if seq is not None else None for chat, seq, _ in stuck]
    by_chat: dict[int, list[float]] = {}
    for (chat, _, _), at in zip(stuck, known, strict=True):
        if at is not None:
            by_chat.setdefault(chat, []).append(at)
    return [
        at if at is not None else (statistics.median(by_chat[chat]) if chat in by_chat else full)
        for (chat, _, full), at in zip(stuck, known, strict=True)
    ]


def server_sockets(table: str, server_port: int) -> dict[int, tuple[str, int]]:
    """The server's connections in /proc/net/tcp's text, by their peer's port: each one's
    state (hex, "01" ESTABLISHED) and send queue (bytes sent and not yet acknowledged)."""
    found = {}
    for line in table.splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        if int(local.rpartition(":")[2], 16) == server_port:
            found[int(remote.rpartition(":")[2], 16)] = (state, int(queues.partition(":")[0], 16))
    return found


def stuck_since(changes: list[tuple[float, int]], most: int) -> float | None:
    """When a send queue, (when, bytes) as it changed, first came within STUCK_SHARE of its
    most: full, as far as the sends are concerned (a full one still creeps up now and then,
    by a few kB, while the server's sends wait). None: it never held a byte."""
    if most <= 0:
        return None
    return next(at for at, queue in changes if queue >= STUCK_SHARE * most)


def held_in_process(stream: StuckStream) -> int | None:
    """The bytes the server's process held for a subscriber it had closed (user space: its
    transport's buffer): all that came once it was drained, but for what the kernel held
    (the server's send queue, the subscriber's receive queue). None for one not closed
    after a drain, whose bytes go on coming."""
    if stream.closed != "eof after drain":
        return None
    return stream.drained_bytes - stream.send_queue_bytes - stream.unread_bytes


def stuck_kib_per_stream(found: NeverReading) -> float:
    """The server's RSS growth while the subscribers were stuck, beyond what the same burst
    added with the readers alone, per stuck subscriber."""
    stuck = found.rss_stuck_kib - found.rss_before_kib
    control = found.rss_control_after_kib - found.rss_control_before_kib
    return (stuck - control) / len(found.stuck)


class StuckSocket:
    """`GET /chats/{id}/events` on a socket whose reader stops after the response head."""

    def __init__(self, url: str, chat_id: int, rcvbuf: int) -> None:
        address = urlsplit(url)
        self.chat_id = chat_id
        self.server_port = address.port or 80
        # "server closed" (its side left ESTABLISHED), "reset" or "eof" (seen unread),
        # "reset after drain", "eof after drain", or "open"
        self.closed = "open"
        self.closed_at: float | None = None  # time.monotonic() it was seen closed
        self.queue_max = 0  # the server's send queue for it at its most, bytes
        self.queue_changes: list[tuple[float, int]] = []  # (when, bytes), as it changed
        self.drain_at: float | None = None  # when it was (or is to be) drained
        self.unread = 0  # bytes in its own receive queue when it was drained
        self.drained = bytearray()
        self.done = False  # closed, or open and quiet for a while after its drain
        self._last_read = 0.0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
        self.sock.settimeout(CONNECT_TIMEOUT_S)
        self.sock.connect((address.hostname or "127.0.0.1", address.port or 80))
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.port = self.sock.getsockname()[1]
        request = (
            f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: {address.netloc}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise BenchError(f"chat {chat_id}: the stream closed before its head")
            head += chunk
        head, _, self.head_rest = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise BenchError(f"chat {chat_id}: the stream answered {head[:100]!r}")
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def queue_max_at(self) -> float | None:
        """When it got stuck: see stuck_since."""
        return stuck_since(self.queue_changes, self.queue_max)

    @property
    def draining(self) -> bool:
        return self.drain_at is not None and self.drain_at <= time.monotonic()

    def server_side(self, found: tuple[str, int] | None, now: float) -> None:
        """The server's side of the connection as /proc/net/tcp showed it (None: gone)."""
        state, queue = found or ("", 0)
        if not self.queue_changes or queue != self.queue_changes[-1][1]:
            self.queue_changes.append((now, queue))
        self.queue_max = max(self.queue_max, queue)
        if state != ESTABLISHED and self.closed == "open":
            self.closed, self.closed_at, self.done = "server closed", now, True

    def seen_closed(self, now: float) -> None:
        """poll() said the stream was reset or ended, with no read."""
        if self.closed == "open":
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            self.closed, self.closed_at = ("reset" if error else "eof"), now
            self.done = True

    def start_drain(self, now: float) -> None:
        self.drain_at = self._last_read = now
        self.unread = struct.unpack("i", fcntl.ioctl(self.sock, FIONREAD, b"\0" * 4))[0]

    def read(self, now: float, quiet_s: float) -> None:
        """Reads what there is, READS_AT_ONCE reads at most (a stream the server still
        feeds would hold the watch up); done once it ends, or after `quiet_s` of nothing."""
        for _ in range(READS_AT_ONCE):
            if self.done:
                return
            try:
                chunk = self.sock.recv(READ_SIZE)
            except BlockingIOError:
                self.done = now - self._last_read >= quiet_s  # still open: the server kept it
                return
            except ConnectionResetError:
                self.closed, self.closed_at, self.done = "reset after drain", now, True
                return
            if not chunk:
                self.closed, self.closed_at, self.done = "eof after drain", now, True
                return
            self.drained += chunk
            self._last_read = now

    def close(self) -> None:
        self.sock.close()


def open_stuck(url: str, chats: int, streams: int, rcvbuf: int) -> list[StuckSocket]:
    """`streams` stuck sockets over chats 1..chats, in turn."""
    opened: list[StuckSocket] = []
    try:
        for index in range(streams):
            opened.append(StuckSocket(url, 1 + index % chats, rcvbuf))
    except BaseException:
        for stuck in opened:
            stuck.close()
        raise
    return opened


class Watcher:
    """Looks at the stuck sockets from both ends without reading them, and drains each at
    its time: `delays[i]` seconds after socket i got stuck (its send queue stopped growing)."""

    def __init__(self, stuck: list[StuckSocket], delays: list[float], quiet_s: float) -> None:
        self._stuck = stuck
        self._delays = delays
        self._quiet_s = quiet_s
        self._poller = select.poll()
        self._by_fd = {s.fileno(): s for s in stuck}
        for fd in self._by_fd:
            self._poller.register(fd, CLOSED_FLAGS)

    @property
    def done(self) -> bool:
        return all(each.done for each in self._stuck)

    def look(self, timeout_s: float) -> None:
        """Waits up to `timeout_s` for a subscriber's side to close, then reads the server's
        side, drains the sockets whose time has come and reads those being drained."""
        for fd, _ in self._poller.poll(1000 * timeout_s):
            self._poller.unregister(fd)
            if not self._by_fd[fd].draining:
                self._by_fd[fd].seen_closed(time.monotonic())
        now = time.monotonic()
        sides = server_sockets(TCP_TABLE.read_text(), self._stuck[0].server_port)
        for each, delay in zip(self._stuck, self._delays, strict=True):
            if each.done:
                continue
            if each.drain_at is None:
                each.server_side(sides.get(each.port), now)
                stuck_at = each.queue_max_at
                # Stuck: the queue has not grown for a quarter of a second at least.
                if stuck_at is not None and now - stuck_at >= max(delay, 0.25):
                    each.start_drain(now)
            if each.draining:
                each.read(now, self._quiet_s)

    def finish(self) -> None:
        """Drains the sockets not drained yet (those that never got stuck), to the end."""
        for each in self._stuck:
            if each.drain_at is None and not each.done:
                each.start_drain(time.monotonic())
        while not self.done:
            time.sleep(0.05)
            for each in self._stuck:
                each.read(time.monotonic(), self._quiet_s)


def drain_delays(count: int, send_timeout_s: float) -> list[float]:
    """When to drain each of `count` stuck sockets, after it got stuck: spread evenly from
    half the send timeout to twice it."""
    if count == 1:
        return [send_timeout_s]
    step = 1.5 * send_timeout_s / (count - 1)
    return [send_timeout_s * 0.5 + index * step for index in range(count)]


def close_bracket(
    drains: list[tuple[float, bool]],
) -> tuple[float | None, float | None]:
    """From (seconds after it got stuck that a socket was drained, whether the server had
    closed it by then): the latest such drain of a stream still open and the earliest of
    one closed (None: there was none)."""
    still_open = [at for at, closed in drains if not closed]
    closed = [at for at, was_closed in drains if was_closed]
    return max(still_open, default=None), min(closed, default=None)
