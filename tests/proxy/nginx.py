"""deploy/nginx.conf run by Debian's nginx on loopback ports, as the tests run it.

The file is used as it is, with four things replaced: the upstream (Compose's `api:8000`),
the listen address (port 80), the pid file and the temporary directories, which go to a
directory of the test's own. Every replaced text must be found exactly once, so that a change
to the file that the tests could not follow fails here rather than testing something else.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.deploy.nginx_conf import NGINX_CONF as CONFIG

UPSTREAM = "server api:8000;"
LISTEN = "listen 80;"
PID = "pid /run/nginx.pid;"
HTTP_BLOCK = "http {\n"
TEMP_DIRECTORIES = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
START_SECONDS = 15.0
STOP_SECONDS = 10.0


def find_nginx() -> str | None:
    """nginx on PATH, or where Debian puts it (/usr/sbin, not on a normal user's PATH)."""
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    return found


def replaced_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    assert count == 1, f"{CONFIG.name}: {old!r} found {count} times, the tests need it once"
    return text.replace(old, new)


def rendered(config: str, upstream: str, listen: str, prefix: Path) -> str:
    """`config` (deploy/nginx.conf's text) for a run in `prefix` on loopback addresses."""
    temp_paths = "".join(
        f"    {name}_temp_path {prefix / 'temp' / name};\n" for name in TEMP_DIRECTORIES
    )
    config = replaced_once(config, UPSTREAM, f"server {upstream};")
    config = replaced_once(config, LISTEN, f"listen {listen};")
    config = replaced_once(config, PID, f"pid {prefix / 'nginx.pid'};")
    return replaced_once(config, HTTP_BLOCK, HTTP_BLOCK + temp_paths)


class Nginx:
    """nginx in the foreground (`daemon off`) with its logs, pid and temporary files in a
    directory of its own, readable by the unprivileged user its workers switch to as root."""

    def __init__(self, binary: str, upstream: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="chatapi-nginx-"))
        self.prefix.chmod(0o755)
        (self.prefix / "temp").mkdir()
        self.config = self.prefix / "nginx.conf"
        self.config.write_text(
            rendered(CONFIG.read_text(), upstream, f"127.0.0.1:{port}", self.prefix)
        )
        self.access_log = self.prefix / "access.log"
        self.error_log = self.prefix / "error.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        # -e: the log of start-up, before the file's own error_log is read.
        return [self.binary, "-p", str(self.prefix), "-c", str(self.config), "-e", "stderr", *args]

    def start(self) -> None:
        with self.access_log.open("wb") as stdout, self.error_log.open("wb") as stderr:
            self.process = subprocess.Popen(
                self.command("-g", "daemon off;"),
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"nginx exited with {self.process.returncode}\n{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        pytest.fail(f"nginx not listening within {START_SECONDS} s\n{self.errors()}")

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_SECONDS)
        shutil.rmtree(self.prefix, ignore_errors=True)

    def answers(self, clients: set[str]) -> Counter[int]:
        """How many of each status nginx's access log shows for requests from `clients`."""
        lines = self.access_log.read_text().splitlines()
        return Counter(
            entry["status"] for entry in map(json.loads, lines) if entry["client"] in clients
        )

    def errors(self) -> str:
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return f"nginx's error log:\n{text[-4000:]}"
