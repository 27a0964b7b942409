"""The client openapi-python-client generates from /openapi.json, used as a user would: the
seeds' flow through it against the served app, typed events and errors included, and a strict
mypy run over the flow and the generated package.

The flow runs as a program of its own, never imported here: Hypothesis draws constants from
the modules it finds loaded outside site-packages, and the generated package's, loaded into
this process, made the fuzz tests' stateful run replay its scenarios inconsistently.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import USER, user_token

FLOW = Path(__file__).with_name("flow.py")
IMPORT_IGNORE = "# type: ignore[import-not-found]"
MYPY_CONFIG = """\
[mypy]
strict = True
cache_dir = .mypy_cache

# The generator's own template, whatever the document: its __exit__ passes `*args: object`
# on to httpx's typed one.
[mypy-chatapi_client.client]
ignore_errors = True
"""
RUN_SECONDS = 60
MYPY_SECONDS = 120


@pytest.fixture(scope="session")
def user_flow(generated: Path) -> Path:
    """flow.py beside the generated package, as a user writes it: without the ignores that
    keep the repository's mypy run quiet, so that each import must find its module."""
    flow = FLOW.read_text().replace(f"  {IMPORT_IGNORE}", "")
    assert "type: ignore" not in flow
    (generated / "flow.py").write_text(flow)
    return generated / "flow.py"


def test_the_flow_runs_through_the_generated_client(user_flow: Path, secured_url: str) -> None:
    result = subprocess.run(
        [sys.executable, user_flow.name, secured_url, user_token(USER)],
        cwd=user_flow.parent,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_flow_type_checks_with_the_generated_client(user_flow: Path) -> None:
    """Strict mypy over the flow as a user writes it: a 422's `detail[0]` needs no check that
    it is set, an event's `data` is a `str`, and so on (and over the generated package)."""
    (user_flow.parent / "mypy.ini").write_text(MYPY_CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=mypy.ini", user_flow.name, "chatapi_client"],
        cwd=user_flow.parent,
        capture_output=True,
        text=True,
        timeout=MYPY_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
