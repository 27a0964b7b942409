"""Which process holds the server's end of a loopback TCP connection, read from /proc (Linux).

With several worker processes accepting on one listening socket, this is how a test learns
which worker a connection of its own landed on.
"""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

# IPv4 only: the servers under test listen on 127.0.0.1.
TCP_TABLE = Path("/proc/net/tcp")


def _port(address: str) -> int:
    """The port of a /proc/net/tcp address, "0100007F:1F90" (hex IP, hex port)."""
    return int(address.rsplit(":", 1)[1], 16)


def _socket_inodes(local_port: int, remote_port: int) -> set[int]:
    """The inodes of the sockets whose own port is `local_port`, connected to `remote_port`."""
    found: set[int] = set()
    for line in TCP_TABLE.read_text().splitlines()[1:]:
        fields = line.split()
        if _port(fields[1]) == local_port and _port(fields[2]) == remote_port:
            found.add(int(fields[9]))
    return found


def _holds(pid: int, targets: set[str]) -> bool:
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return False  # exited while we looked
    for name in names:
        try:
            if os.readlink(f"{directory}/{name}") in targets:
                return True
        except OSError:
            continue  # closed while we looked
    return False


def server_side_holder(server_port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """Which of `pids` holds the server's end of the connection from `client_port`, if any."""
    targets = {f"socket:[{inode}]" for inode in _socket_inodes(server_port, client_port)}
    if not targets:
        return None
    return next((pid for pid in pids if _holds(pid, targets)), None)


def client_port(response: httpx.Response) -> int:
    """The test's own port of the connection that carried `response` (while it is open)."""
    stream: Any = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])
