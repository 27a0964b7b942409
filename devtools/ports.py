"""Loopback ports for servers started by the tests, `make fuzz` and the benchmark."""

import socket


def free_port() -> int:
    """A loopback port nobody listens on now (bound for a moment, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
