"""A headless Chromium for the browser tests: found on PATH, else installed from Debian.

Without one, the browser tests fail under CI (the `CI` environment variable set, as CI runs
do) and are skipped elsewhere, with a banner at the end of the run saying so.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

BINARIES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_TIMEOUT = 15 * 60  # seconds, apt-get update and install together
RUN_TIMEOUT = 120  # seconds, for one page
OUTPUT_TAIL = 40  # lines of a failed command's output shown in the report
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
_chromium_missing: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in _chromium_missing:
        terminalreporter.section("API EXPLORER NOT TESTED IN A BROWSER", sep="!", red=True)
        terminalreporter.line(f"No headless Chromium: {reason}", red=True, bold=True)


class CommandFailed(Exception):
    """A command exited non-zero or ran out of time; the message ends with its output."""


def tail(output: str, lines: int = OUTPUT_TAIL) -> str:
    return "\n".join(output.splitlines()[-lines:])


def run(command: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command in its own process group and return its stdout.

    On time-out the whole group is killed, so no browser process outlives the test.
    """
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise CommandFailed(
            f"{' '.join(command)} did not finish within {timeout:.0f} s:\n{tail(stdout + stderr)}"
        ) from None
    if process.returncode != 0:
        raise CommandFailed(
            f"{' '.join(command)} exited with {process.returncode}:\n{tail(stdout + stderr)}"
        )
    return stdout


def find_chromium() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


def install_debian_package(package: str) -> None:
    """Install a Debian package, as root or through password-less sudo."""
    if shutil.which("apt-get") is None:
        raise CommandFailed(f"apt-get is not available to install Debian's {package} package")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise CommandFailed(f"not root and no sudo, so {package} cannot be installed")
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if prefix:
        prefix.append("DEBIAN_FRONTEND=noninteractive")  # sudo resets the environment
    deadline = time.monotonic() + INSTALL_TIMEOUT
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", package],
    ):
        run([*prefix, *command], timeout=max(deadline - time.monotonic(), 1), env=env)


def unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI is set and no headless Chromium could be had: {reason}")
    _chromium_missing.append(reason)
    pytest.skip(f"!!! NO HEADLESS CHROMIUM, THE API EXPLORER IS NOT TESTED: {reason}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a Chromium binary that runs, installing Debian's package if need be."""
    binary = find_chromium()
    if binary is None:
        try:
            install_debian_package("chromium")
        except CommandFailed as error:
            unavailable(f"installing Debian's chromium package failed: {error}")
        binary = find_chromium()
        if binary is None:
            unavailable(f"none of {', '.join(BINARIES)} is on PATH, even after installing")
    try:
        run([binary, "--version"], timeout=RUN_TIMEOUT)
    except CommandFailed as error:
        unavailable(f"{binary} does not run: {error}")
    return binary


class Browser:
    """Headless Chromium, each page loaded in a fresh profile."""

    def __init__(self, binary: str, profiles: pytest.TempPathFactory) -> None:
        self._binary = binary
        self._profiles = profiles

    def rendered_dom(self, url: str) -> str:
        """The page's DOM once its scripts have run and the network has settled.

        Virtual time runs only while nothing is loading, and fast-forwards through timers,
        so 15 s of it covers Swagger UI and ReDoc fetching and rendering the spec.
        """
        profile: Path = self._profiles.mktemp("chromium-profile")
        command = [
            self._binary,
            "--headless=new",
            "--no-sandbox",  # needed as root, and in most containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ]
        try:
            return run(command, timeout=RUN_TIMEOUT)
        except CommandFailed as error:
            pytest.fail(f"Chromium could not render {url}: {error}")


@pytest.fixture(scope="session")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Browser:
    return Browser(chromium, tmp_path_factory)
