"""The service behind deploy/nginx.conf, run for real: Debian's nginx in front of `chatapi
serve` on PostgreSQL, both on loopback ports below the ephemeral range.

nginx is found on PATH (or /usr/sbin), else installed from Debian with apt-get. Without it
the tests fail under CI (`CI`) or CHATAPI_REQUIRE_POSTGRES=1, and are skipped elsewhere with
a banner at the end of the run.
"""

import resource
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NoReturn

import httpx
import pytest

from devtools.ports import free_low_port
from infrastructure import migrations
from tests.browser.conftest import IN_CI, CommandFailed, install_debian_package, run
from tests.conftest import REQUIRE_POSTGRES, EmptyDatabases
from tests.live.processes import ServeProcess
from tests.proxy.nginx import Nginx, find_nginx
from tests.proxy.probes import SUMMARY, SUMMARY_HEADER, Figures, app_connections, probing

# Sockets the test process holds at once at most (the largest probe), with room to spare.
OPEN_FILES_NEEDED = 4096
SEED_MESSAGES = 100
SEED_TEXT_LENGTH = 1000
SETTLE_SECONDS = 30.0
SETTLED_CONNECTIONS = 40  # nginx's 32 idle keep-alive connections, and a few in use
_nginx_missing: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in _nginx_missing:
        terminalreporter.section("THE PROXY WAS NOT TESTED", sep="!", red=True)
        terminalreporter.line(f"No nginx: {reason}", red=True, bold=True)
    if SUMMARY:
        terminalreporter.section("hostile clients through deploy/nginx.conf")
        terminalreporter.line(SUMMARY_HEADER)
        for figures in SUMMARY:
            terminalreporter.line(figures.row())


def unavailable(reason: str) -> NoReturn:
    if IN_CI or REQUIRE_POSTGRES:
        pytest.fail(f"CI (or CHATAPI_REQUIRE_POSTGRES=1) and no nginx could be had: {reason}")
    _nginx_missing.append(reason)
    pytest.skip(f"!!! NO NGINX, THE PROXY IS NOT TESTED: {reason}")


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    """The path of an nginx that runs, installing Debian's package if need be."""
    try:
        if find_nginx() is None:
            install_debian_package("nginx")
        binary = find_nginx()
        if binary is None:
            raise CommandFailed("not on PATH nor in /usr/sbin after installing Debian's package")
        run([binary, "-v"], timeout=30)  # it runs
    except (CommandFailed, OSError) as error:
        unavailable(str(error))
    return binary


@pytest.fixture(scope="session")
def open_files() -> Iterator[int]:
    """The soft limit on open files raised to the hard one, for thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = hard if hard == resource.RLIM_INFINITY else max(soft, hard)
    if raised != resource.RLIM_INFINITY and raised < OPEN_FILES_NEEDED:
        pytest.fail(f"the probes need {OPEN_FILES_NEEDED} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    yield raised
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class Stack:
    """nginx in front of `chatapi serve`; a chat of 100 long messages and one for a
    normal client."""

    app: ServeProcess
    nginx: Nginx
    big_chat: int
    normal_chat: int

    @property
    def url(self) -> str:
        return self.nginx.base_url

    def probe(
        self, name: str, hostile: int, normal_bounded: bool = True
    ) -> AbstractContextManager[Figures]:
        """A normal client and a monitor around a probe's block (`probes.probing`)."""
        figures = Figures(name, hostile, normal_bounded)
        return probing(figures, self.url, self.normal_chat, self.app, self.nginx.pid)

    def settle(self) -> None:
        """Wait until the app has let go of the connections a probe made it open (beyond
        nginx's idle keep-alive ones), so that the next probe starts on an idle app."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while app_connections(self.app.port) > SETTLED_CONNECTIONS:
            assert time.monotonic() < deadline, "the app still busy after the probe"
            time.sleep(0.1)


def seed(app_url: str) -> tuple[int, int]:
    """Straight to the app (the proxy would rate-limit it): the two chats of the probes, and
    each kind of request once, so the app's memory is warm before any is measured."""
    with httpx.Client(base_url=app_url, timeout=30) as http:
        big, normal = (http.post("/chats/", json={"title": t}).json()["id"] for t in "BN")
        for n in range(SEED_MESSAGES):
            text = f"{n:04d} " + "x" * (SEED_TEXT_LENGTH - 5)
            assert http.post(f"/chats/{big}/messages/", json={"text": text}).status_code == 201
        for _ in range(20):
            assert http.get(f"/chats/{big}", params={"limit": 100}).status_code == 200
            assert http.get(f"/chats/{normal}").status_code == 200
    return big, normal


@pytest.fixture(scope="package")
def stack(
    nginx_binary: str,
    open_files: int,
    databases: EmptyDatabases,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    database_url = databases.new("postgresql")
    migrations.upgrade(database_url)
    app = ServeProcess(database_url, tmp_path_factory.mktemp("proxied"), port=free_low_port())
    nginx = Nginx(nginx_binary, f"127.0.0.1:{app.port}", free_low_port())
    try:
        app.start()
        nginx.start()
        big, normal = seed(app.base_url)
        yield Stack(app, nginx, big, normal)
    finally:
        nginx.stop()
        app.stop()
