"""FORWARDED_ALLOW_IPS: uvicorn takes the client's address from X-Forwarded-For only when the
connection comes from a trusted proxy, and a mistyped address stops `serve` at start-up
(uvicorn alone would take it for a name that never matches, without a word)."""

import json
import logging.config
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from cli.serve import serve
from tests.integration.test_cli import CHATAPI, cli_env, failed
from tests.support.servers import container_for

FORWARDED_CLIENT = "203.0.113.7"


def uvicorn_options(monkeypatch: pytest.MonkeyPatch, database: Path, **env: str) -> Any:
    """The keyword arguments `chatapi serve` hands uvicorn.run with these settings."""
    given: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: given.update(options))
    # What serve does to the process besides: not to this test's.
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(logging.config, "dictConfig", lambda config: None)
    serve(container_for(f"sqlite:///{database}", **env))
    return given


async def client_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the client's address as the app would see it in `request.client`."""
    body = json.dumps(scope["client"][0]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def echo_served(**options: Any) -> Iterator[str]:
    config = uvicorn.Config(
        client_echo, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn exited"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.parametrize(
    ("trusted", "seen"),
    [(None, FORWARDED_CLIENT), ("10.0.0.0/8,::1", "127.0.0.1"), ("*", FORWARDED_CLIENT)],
)
def test_x_forwarded_for_is_believed_only_from_forwarded_allow_ips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trusted: str | None, seen: str
) -> None:
    """The test connects from 127.0.0.1, which the default trusts (as uvicorn's does)."""
    env = {} if trusted is None else {"forwarded_allow_ips": trusted}
    options = uvicorn_options(monkeypatch, tmp_path / "chatapi.db", **env)
    with echo_served(
        proxy_headers=options["proxy_headers"],
        forwarded_allow_ips=options["forwarded_allow_ips"],
    ) as url:
        answer = httpx.get(url, headers={"X-Forwarded-For": FORWARDED_CLIENT})
    assert answer.json() == seen


def test_a_forwarded_allow_ips_that_is_no_address_stops_serve(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CHATAPI), "serve"],
        env=cli_env(f"sqlite:///{tmp_path / 'chatapi.db'}", FORWARDED_ALLOW_IPS="10.0.0.1,proxy"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = failed(result)
    assert message.startswith("invalid configuration: FORWARDED_ALLOW_IPS: "), message
    assert "'proxy'" in message, message
