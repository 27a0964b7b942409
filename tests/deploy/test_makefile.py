"""The Makefile installs what each front door needs: `make run` the runtime lock only, the
development targets the development lock on top, each lock once.

`make` runs for real, with PYTHON standing in for `python3 -m venv`: the virtualenv it makes
holds programs that only write down how they were called.
"""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy import lock
from tests.deploy.image import REPO

RUNTIME_LOCK = "requirements.lock"
DEV_LOCK = "requirements-dev.lock"
DEV_TARGETS = ["test", "lint", "typecheck", "pytest", "fuzz", "bench"]
MAKE_SECONDS = 60

# `$PYTHON -m venv DIR`: DIR/bin gets a recorder for every program a recipe may call, and
# pyvenv.cfg, as venv writes it. `-c CODE` (the Makefile's version check), whether of PYTHON
# or of the virtualenv's python, is run by this Python for real.
FAKE_PYTHON = f"""#!/bin/sh
set -eu
[ "$1" = -c ] && exec {sys.executable} "$@"
[ "$1" = -m ] && [ "$2" = venv ] || {{ echo "unexpected: $*" >&2; exit 64; }}
mkdir -p "$3/bin"
touch "$3/pyvenv.cfg"
for program in python pip chatapi ruff mypy pytest uv; do
    printf '#!/bin/sh\\n[ "%s" = python ] && [ "$1" = -c ] && exec {sys.executable} "$@"\\n' \\
        "$program" > "$3/bin/$program"
    printf 'echo "%s $*" >> "%s"\\n' "$program" "$CALLS" >> "$3/bin/$program"
    chmod +x "$3/bin/$program"
done
"""


class Make:
    def __init__(self, directory: Path) -> None:
        make = shutil.which("make")
        if make is None:
            pytest.skip("no make")
        self.make = make
        self.venv = directory / "venv"
        self.calls = directory / "calls"
        self.python = directory / "python"
        self.python.write_text(FAKE_PYTHON)
        self.python.chmod(0o755)

    def __call__(self, target: str) -> list[str]:
        """Run `make target`; the calls its recipes made, one line each."""
        self.calls.write_text("")
        variables = [f"VENV={self.venv}", f"PYTHON={self.python}"]
        result = subprocess.run(
            [self.make, "--no-print-directory", *variables, target],
            cwd=REPO,
            env={**os.environ, "CALLS": str(self.calls)},
            capture_output=True,
            text=True,
            timeout=MAKE_SECONDS,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return self.calls.read_text().splitlines()


def installed_locks(calls: list[str]) -> list[str]:
    """The requirement files the calls installed, in order."""
    locks = []
    for call in calls:
        words = call.split()
        if "install" in words:
            locks += [words[n + 1] for n, word in enumerate(words[:-1]) if word == "-r"]
    return locks


@pytest.fixture
def make(tmp_path: Path) -> Make:
    return Make(tmp_path)


def test_make_run_installs_the_runtime_lock_only_and_serves(make: Make) -> None:
    calls = make("run")

    assert installed_locks(calls) == [RUNTIME_LOCK]
    assert calls[-2:] == ["chatapi migrate", "chatapi serve"]


def test_make_test_after_make_run_adds_the_development_lock_only(make: Make) -> None:
    make("run")

    calls = make("test")

    assert installed_locks(calls) == [DEV_LOCK]
    assert {call.split()[0] for call in calls} >= {"ruff", "mypy", "pytest"}


def test_make_run_after_make_test_installs_nothing(make: Make) -> None:
    assert installed_locks(make("test")) == [RUNTIME_LOCK, DEV_LOCK]

    assert installed_locks(make("run")) == []
    assert installed_locks(make("test")) == []


@pytest.mark.parametrize("target", DEV_TARGETS)
def test_every_development_target_has_the_development_tools(make: Make, target: str) -> None:
    assert DEV_LOCK in installed_locks(make(target))


def test_the_runtime_lock_holds_no_development_tool() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    tools = {lock.requirement_name(d) for d in project["optional-dependencies"]["dev"]}
    assert tools, "no development tools declared"
    assert not tools & set(lock.entries(REPO / RUNTIME_LOCK))


def test_the_development_lock_pins_the_runtime_packages_as_the_runtime_lock_does() -> None:
    """So that `make test` after `make run` adds tools and changes nothing already there."""
    runtime = lock.entries(REPO / RUNTIME_LOCK)
    development = lock.entries(REPO / DEV_LOCK)
    for name, lines in runtime.items():
        assert name in development, name
        assert set(development[name]) == set(lines), name
