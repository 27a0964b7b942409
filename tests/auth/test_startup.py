"""Starting up with identity and access: the settings refuse what cannot work (and never
echo a secret), `chatapi serve` refuses AUTH_MODE=none on a reachable HOST, and the
console script makes user tokens and API keys that the server takes."""

import logging.config
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

import cli.main
import cli.serve
from cli.errors import UnsupportedConfiguration
from devtools.ports import free_port
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.auth.conftest import AUDIENCE, SECRET, bearer
from tests.auth.helpers import chatapi, failed, finish, refused, start, succeeded
from tests.support.servers import container_for

SHORT_SECRET = "short-secret-SHHH-0123456789"  # 28 bytes
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3


@pytest.fixture(autouse=True)
def _no_auth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: none of the run's own."""
    for name in list(os.environ):
        if name.startswith(("AUTH_", "ALLOW_")):
            monkeypatch.delenv(name)


def _refusal(**settings: Any) -> str:
    """The text of the settings' refusal, asserted free of every secret given."""
    with pytest.raises(ValidationError) as raised:
        Settings(**settings)
    error = raised.value
    texts = [str(error), repr(error)]
    for name, value in settings.items():
        if name in ("auth_jwt_secret", "auth_key_pepper") and value:
            for written in texts:
                assert value not in written, written
    return str(error)


def test_auth_required_needs_a_long_enough_secret(tmp_path: Path) -> None:
    assert "AUTH_JWT_SECRET" in _refusal(auth_mode="required")
    assert "AUTH_JWT_SECRET" in _refusal(auth_mode="required", auth_jwt_secret="")
    message = _refusal(auth_mode="required", auth_jwt_secret=SHORT_SECRET)
    assert "32" in message
    assert "AUTH_JWT_SECRET" in message
    _refusal(auth_mode="required", auth_jwt_secret="s" * 31)
    # 32 bytes is enough; bytes, not characters: "é" * 16 is 32 bytes.
    for secret in ("s" * 32, "é" * 16):
        settings = Settings(auth_mode="required", auth_jwt_secret=secret)
        assert settings.auth_jwt_secret is not None
        assert settings.auth_jwt_secret.get_secret_value() == secret
    _refusal(auth_mode="required", auth_jwt_secret="é" * 15 + "s")  # 31 bytes
    # A short secret is refused even where it is not needed (AUTH_MODE=none).
    _refusal(auth_jwt_secret=SHORT_SECRET)
    # The pepper of API keys too.
    assert "AUTH_KEY_PEPPER" in _refusal(
        auth_mode="required", auth_jwt_secret=SECRET, auth_key_pepper=SHORT_SECRET
    )
    # The secret does not show in the settings' own representation either.
    settings = Settings(auth_mode="required", auth_jwt_secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "jwt_secret"
    secret_file.write_text(f"{SECRET}\n")
    settings = Settings(auth_mode="required", auth_jwt_secret_file=secret_file)
    assert settings.auth_jwt_secret is not None
    assert settings.auth_jwt_secret.get_secret_value() == SECRET  # the final newline dropped
    # From the environment, as a container's secrets are mounted.
    monkeypatch.setenv("AUTH_MODE", "required")
    monkeypatch.setenv("AUTH_JWT_SECRET_FILE", str(secret_file))
    from_environment = Settings()
    assert from_environment.auth_jwt_secret is not None
    assert from_environment.auth_jwt_secret.get_secret_value() == SECRET
    pepper_file = tmp_path / "pepper"
    pepper_file.write_text("p" * 40)
    monkeypatch.setenv("AUTH_KEY_PEPPER_FILE", str(pepper_file))
    peppered = Settings()
    assert peppered.key_pepper == b"p" * 40
    # Without a pepper, one derived from the secret, never the secret itself.
    assert from_environment.key_pepper is not None
    assert SECRET.encode() not in from_environment.key_pepper
    monkeypatch.delenv("AUTH_JWT_SECRET_FILE")
    monkeypatch.delenv("AUTH_KEY_PEPPER_FILE")

    # Both the secret and its file: which one? Refused.
    message = _refusal(
        auth_mode="required", auth_jwt_secret=SECRET, auth_jwt_secret_file=secret_file
    )
    assert "AUTH_JWT_SECRET" in message
    assert "AUTH_JWT_SECRET_FILE" in message
    # A file holding too short a secret, and one that is not there.
    short_file = tmp_path / "short"
    short_file.write_text(SHORT_SECRET)
    message = _refusal(auth_mode="required", auth_jwt_secret_file=short_file)
    assert SHORT_SECRET not in message
    assert "32" in message
    message = _refusal(auth_mode="required", auth_jwt_secret_file=tmp_path / "missing")
    assert "AUTH_JWT_SECRET_FILE" in message


class Proceeded(Exception):
    """serve() went past its checks: it would start logging and serving now."""


def _serve_in_process(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
    """cli.serve.serve with these settings, stopped (Proceeded) where it would start."""

    def proceed(*args: Any, **kwargs: Any) -> None:
        raise Proceeded

    monkeypatch.setattr(logging.config, "dictConfig", proceed)
    cli.serve.serve(container_for("sqlite:///unused.db", **settings))


def test_serve_refuses_what_it_cannot_serve_safely(tmp_path: Path) -> None:
    """As a user runs it: refused at once, in one JSON line, no traceback, no secret."""
    port = str(free_port())
    refusals = {
        "none-on-any": start("serve", cwd=tmp_path, HOST="0.0.0.0", PORT=port, AUTH_MODE="none"),
        "required-short-secret": start(
            "serve",
            cwd=tmp_path,
            HOST="127.0.0.1",
            PORT=port,
            AUTH_MODE="required",
            AUTH_JWT_SECRET=SHORT_SECRET,
        ),
    }
    started = time.monotonic()
    messages = {name: failed(finish(p, 20), EXIT_INVALID) for name, p in refusals.items()}
    assert time.monotonic() - started < 20
    assert "ALLOW_UNAUTHENTICATED" in messages["none-on-any"], messages
    assert "AUTH_MODE" in messages["none-on-any"], messages
    assert "AUTH_JWT_SECRET" in messages["required-short-secret"], messages
    assert SHORT_SECRET not in messages["required-short-secret"], messages
    assert not list(tmp_path.iterdir())  # not even a database file was made


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "192.0.2.7", "chat.example.com", ""])
def test_auth_mode_none_is_refused_on_a_reachable_host(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    with pytest.raises(UnsupportedConfiguration) as raised:
        _serve_in_process(monkeypatch, host=host)
    assert "ALLOW_UNAUTHENTICATED" in str(raised.value)
    with pytest.raises(UnsupportedConfiguration):
        _serve_in_process(monkeypatch, host=host, allow_unauthenticated=False)
    # On purpose, it serves.
    with pytest.raises(Proceeded):
        _serve_in_process(monkeypatch, host=host, allow_unauthenticated=True)
    # And with AUTH_MODE=required, of course.
    with pytest.raises(Proceeded):
        _serve_in_process(monkeypatch, host=host, auth_mode="required", auth_jwt_secret=SECRET)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_auth_mode_none_is_served_on_a_loopback_host(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    with pytest.raises(Proceeded):
        _serve_in_process(monkeypatch, host=host)


def _run_main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    **environment: str,
) -> subprocess.CompletedProcess[str]:
    """`chatapi ARGV` run in this process (cli.main.main), as the console script runs it."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = cli.main.main(list(argv))
    out, err = capsys.readouterr()
    for name in environment:
        monkeypatch.delenv(name)
    return subprocess.CompletedProcess(["chatapi", *argv], code, out, err)


def _printed_token(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    printed = lines[0]
    assert printed == printed.strip()
    return printed


def test_token_mint(
    secured: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: str,
    tmp_path: Path,
) -> None:
    if backend == "postgresql":  # the console script itself, once
        minting = start("token", "mint", "ann", cwd=tmp_path, AUTH_JWT_SECRET=SECRET)
        without_secret = start("token", "mint", "ann", cwd=tmp_path)
        assert "AUTH_JWT_SECRET" in failed(finish(without_secret), EXIT_INVALID)
        ann = _printed_token(finish(minting))
    else:
        ann = _printed_token(
            _run_main(monkeypatch, capsys, "token", "mint", "ann", AUTH_JWT_SECRET=SECRET)
        )
    claims = jwt.decode(ann, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == "ann"
    assert claims["exp"] - claims["iat"] == 3600
    created = secured.post("/chats/", json={"title": "minted"}, headers=bearer(ann))
    assert created.status_code == 201, created.text
    members = secured.get(f"/chats/{created.json()['id']}/members/", headers=bearer(ann))
    assert [m["user_id"] for m in members.json()["members"]] == ["ann"]

    run = _run_main(
        monkeypatch, capsys, "token", "mint", "bob", "--ttl", "60", AUTH_JWT_SECRET=SECRET
    )
    bob = _printed_token(run)
    claims = jwt.decode(bob, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert (claims["sub"], claims["exp"] - claims["iat"]) == ("bob", 60)
    assert secured.get("/chats/", headers=bearer(bob)).status_code == 200

    assert "AUTH_JWT_SECRET" in failed(_run_main(monkeypatch, capsys, "token", "mint", "ann"), 2)
    for bad in (["--ttl", "0"], ["--ttl", "-5"]):
        run = _run_main(monkeypatch, capsys, "token", "mint", "ann", *bad, AUTH_JWT_SECRET=SECRET)
        assert "ttl" in failed(run, EXIT_INVALID)
    run = _run_main(monkeypatch, capsys, "token", "mint", "x" * 129, AUTH_JWT_SECRET=SECRET)
    failed(run, EXIT_INVALID)


def test_keys_create_list_revoke(
    secured: httpx.Client,
    database_url: str,
    auth_container: Container,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = succeeded(
        chatapi("keys", "create", "bridge", database_url=database_url, AUTH_JWT_SECRET=SECRET)
    )
    assert set(made) == {"id", "name", "key"}, made
    assert made["name"] == "bridge"
    key = made["key"]
    assert isinstance(key, str)
    assert key.startswith(f"chatapi_sk_{made['id']}_"), made
    response = secured.get("/chats/", headers=bearer(key))
    assert response.status_code == 200, response.text

    env = {"DATABASE_URL": database_url, "AUTH_JWT_SECRET": SECRET}
    listed = _run_main(monkeypatch, capsys, "keys", "list", **env)
    assert key not in listed.stdout
    assert key.rsplit("_", 1)[1] not in listed.stdout
    (shown,) = succeeded(listed)["keys"]
    assert set(shown) == {"id", "name", "created_at", "last_used_at", "revoked_at"}, shown
    assert shown["id"] == made["id"]
    assert shown["name"] == "bridge"
    assert shown["last_used_at"] is not None  # it was used just now
    assert shown["revoked_at"] is None

    unknown = _run_main(monkeypatch, capsys, "keys", "revoke", "0" * 16, **env)
    failed(unknown, EXIT_NOT_FOUND)
    no_pepper = _run_main(monkeypatch, capsys, "keys", "create", "x", DATABASE_URL=database_url)
    assert "AUTH_JWT_SECRET" in failed(no_pepper, EXIT_INVALID)
    for name in ("", "   ", "n" * 101):
        failed(_run_main(monkeypatch, capsys, "keys", "create", name, **env), EXIT_INVALID)

    revoked = succeeded(_run_main(monkeypatch, capsys, "keys", "revoke", made["id"], **env))
    assert revoked == {"revoked": made["id"]}
    refused(secured.get("/chats/", headers=bearer(key)), key)
    (info,) = auth_container.api_keys().list()
    assert info.revoked_at is not None
    (shown,) = succeeded(_run_main(monkeypatch, capsys, "keys", "list", **env))["keys"]
    assert shown["revoked_at"] is not None
