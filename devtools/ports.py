"""Loopback ports for servers started by the tests, `make fuzz` and the benchmark."""

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000  # above the well-known and most registered services' ports


def free_port() -> int:
    """A loopback port nobody listens on now (bound for a moment, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_low_port() -> int:
    """A free loopback port below the kernel's ephemeral range (where `free_port`'s come from).

    Between the check and the server's bind, no outgoing connection can take it as its own
    source port: what a test that opens thousands of client sockets needs.
    """
    low = int(EPHEMERAL_RANGE.read_text().split()[0]) if EPHEMERAL_RANGE.exists() else 32768
    candidates = list(range(LOWEST_PORT, low))
    random.shuffle(candidates)  # two test runs at once rarely try the same ones
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {LOWEST_PORT}..{low - 1}")
