"""`chatapi serve` with WORKERS: more than one process needs PostgreSQL.

SQLite has no hints between processes, so a stream on one worker would learn of a message
posted through another only by polling; `serve` refuses that rather than serving it.
"""

import subprocess
import time
from pathlib import Path

from tests.integration.test_cli import CHATAPI, cli_env, failed

# Refusing takes no server start: far less than starting one would.
REFUSAL_SECONDS = 30.0


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chatapi.db'}"
    started = time.monotonic()
    result = subprocess.run(
        [str(CHATAPI), "serve"],
        env=cli_env(url, WORKERS="2", PORT="1"),  # a port it could not bind: it never tries
        capture_output=True,
        text=True,
        timeout=REFUSAL_SECONDS,
        check=False,
    )
    assert time.monotonic() - started < REFUSAL_SECONDS
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = failed(result)
    assert message.startswith("invalid configuration: WORKERS: "), message
    assert "PostgreSQL" in message, message
    assert not (tmp_path / "chatapi.db").exists()  # nothing was opened
