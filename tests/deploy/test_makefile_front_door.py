"""The Makefile as a new user meets it: `make help`, and a Python too old for chatapi.

Nothing is installed: the version checks stop make, or `make -n` shows what it would run.
An old Python is faked by a script that runs this one with sys.version_info replaced."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKE_TIMEOUT_SECONDS = 60.0
# Every command a user runs (`.ci/run` runs `make test`).
COMMANDS = (
    "help",
    "install",
    "install-dev",
    "run",
    "test",
    "lint",
    "typecheck",
    "pytest",
    "pytest-standby",
    "fuzz",
    "bench",
    "lock",
    "clean",
)


def make(*args: str) -> subprocess.CompletedProcess[str]:
    # Without what an enclosing `make test` passes down to sub-makes (its variables included).
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT_SECONDS,
        check=False,
    )


def fake_python(path: Path, version: tuple[int, int, int]) -> Path:
    """A `python -c CODE` that reports `version` (all the Makefile asks of it)."""
    dotted = ".".join(map(str, version))
    code = (
        f"import sys; sys.version_info = {(*version, 'final', 0)!r}; "
        f"sys.version = '{dotted} (fake)'; exec(sys.argv[1])"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{code}" "$2"\n')
    path.chmod(0o755)
    return path


def old_virtualenv(venv: Path, version: tuple[int, int, int]) -> Path:
    """A virtualenv made by Python `version`, everything installed as far as make knows."""
    fake_python(venv / "bin" / "python", version)
    (venv / "pyvenv.cfg").write_text("")
    for stamp in (".runtime-installed", ".dev-installed"):
        (venv / stamp).touch()
    # The stamps no older than the locks, as after an install.
    newest = max((ROOT / name).stat().st_mtime for name in ("requirements.lock", "pyproject.toml"))
    for path in (venv / "pyvenv.cfg", venv / ".runtime-installed", venv / ".dev-installed"):
        os.utime(path, (newest + 1, newest + 1))
    return venv


def test_make_help_lists_every_command() -> None:
    shown = make("help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    for command in COMMANDS:
        assert any(line.startswith(f"make {command}: ") for line in shown.stdout.splitlines()), (
            command,
            shown.stdout,
        )
    assert make().stdout == shown.stdout  # `make` alone: the same list


def test_a_python_older_than_3_11_stops_make_before_anything_is_made(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "python3.10", (3, 10, 12))
    venv = tmp_path / "venv"

    result = make(f"PYTHON={python}", f"VENV={venv}", "install")

    assert result.returncode == 2, result
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"{python} is Python 3.10.12; chatapi needs Python 3.11 or newer" in result.stderr
    assert not venv.exists()


def test_a_virtualenv_of_an_older_python_is_made_again(tmp_path: Path) -> None:
    venv = old_virtualenv(tmp_path / "venv", (3, 10, 12))
    python = fake_python(tmp_path / "python3.12", (3, 12, 1))

    planned = make("-n", f"PYTHON={python}", f"VENV={venv}", "install-dev")

    assert planned.returncode == 0, planned
    lines = planned.stdout.splitlines()
    assert lines[:2] == [f"rm -rf {venv}", f"{python} -m venv {venv}"], lines
    # Then everything installed into it again.
    assert any("-r requirements.lock" in line for line in lines), lines
    assert any("-r requirements-dev.lock" in line for line in lines), lines
    # Which needs a Python that fits: the same one-line refusal otherwise.
    refused = make("-n", f"PYTHON={venv / 'bin' / 'python'}", f"VENV={venv}", "install")
    assert refused.returncode == 2, refused
    assert "chatapi needs Python 3.11 or newer" in refused.stderr


def test_a_virtualenv_of_a_python_that_fits_is_kept(tmp_path: Path) -> None:
    venv = old_virtualenv(tmp_path / "venv", (3, 12, 1))

    planned = make("-n", f"VENV={venv}", "install-dev")

    assert planned.returncode == 0, planned
    assert planned.stdout.strip() == "make: Nothing to be done for 'install-dev'."
