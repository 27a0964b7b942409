"""Starting up with identity and access: the settings refuse what cannot work (and never
echo a secret), `chatapi serve` refuses AUTH_MODE=none on a reachable HOST, and the
console script makes user tokens and API keys that the server takes."""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from devtools.ports import free_port
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.auth.conftest import AUDIENCE, SECRET, bearer
from tests.auth.helpers import chatapi, failed, finish, refused, start, succeeded

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
    # 32 bytes is enough; bytes, not characters: 16 × "é" is 32 bytes.
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


def test_serve_refuses_what_it_cannot_serve_safely(tmp_path: Path) -> None:
    port = str(free_port())
    # Each would serve on 0.0.0.0 if it did not refuse: started side by side, all refuse.
    refusals = {
        "none-on-any": start("serve", cwd=tmp_path, HOST="0.0.0.0", PORT=port),
        "none-on-ipv6-any": start("serve", cwd=tmp_path, HOST="::", PORT=port),
        "none-on-a-name": start("serve", cwd=tmp_path, HOST="chat.example.com", PORT=port),
        "none-said-false": start(
            "serve",
            cwd=tmp_path,
            HOST="0.0.0.0",
            PORT=port,
            AUTH_MODE="none",
            ALLOW_UNAUTHENTICATED="false",
        ),
        "required-without-secret": start(
            "serve", cwd=tmp_path, HOST="0.0.0.0", PORT=port, AUTH_MODE="required"
        ),
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
    messages = {
        name: failed(finish(process, 20), EXIT_INVALID) for name, process in refusals.items()
    }
    assert time.monotonic() - started < 20
    for name in ("none-on-any", "none-on-ipv6-any", "none-on-a-name", "none-said-false"):
        assert "ALLOW_UNAUTHENTICATED" in messages[name], messages[name]
        assert "AUTH_MODE" in messages[name], messages[name]
    assert "AUTH_JWT_SECRET" in messages["required-without-secret"]
    assert "AUTH_JWT_SECRET" in messages["required-short-secret"]
    assert SHORT_SECRET not in messages["required-short-secret"]
    assert not list(tmp_path.iterdir())  # not even a database file was made


@pytest.fixture(scope="module")
def minted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """What `chatapi token mint` printed, and its failures, run side by side once."""
    cwd = tmp_path_factory.mktemp("mint")
    processes = {
        "ann": start("token", "mint", "ann", cwd=cwd, AUTH_JWT_SECRET=SECRET),
        "short": start("token", "mint", "bob", "--ttl", "60", cwd=cwd, AUTH_JWT_SECRET=SECRET),
        "no-secret": start("token", "mint", "ann", cwd=cwd),
        "no-ttl": start("token", "mint", "ann", "--ttl", "0", cwd=cwd, AUTH_JWT_SECRET=SECRET),
        "bad-user": start("token", "mint", "x" * 129, cwd=cwd, AUTH_JWT_SECRET=SECRET),
    }
    yield {name: finish(process) for name, process in processes.items()}


def _printed_token(result: Any) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    printed: str = lines[0]
    assert printed == printed.strip()
    return printed


def test_token_mint_prints_a_token_the_server_takes(
    secured: httpx.Client, minted: dict[str, Any]
) -> None:
    ann = _printed_token(minted["ann"])
    claims = jwt.decode(ann, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == "ann"
    assert claims["exp"] - claims["iat"] == 3600
    created = secured.post("/chats/", json={"title": "minted"}, headers=bearer(ann))
    assert created.status_code == 201, created.text
    members = secured.get(f"/chats/{created.json()['id']}/members/", headers=bearer(ann))
    assert [m["user_id"] for m in members.json()["members"]] == ["ann"]

    bob = _printed_token(minted["short"])
    claims = jwt.decode(bob, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert (claims["sub"], claims["exp"] - claims["iat"]) == ("bob", 60)
    assert secured.get("/chats/", headers=bearer(bob)).status_code == 200


def test_token_mint_refuses_without_a_secret(minted: dict[str, Any]) -> None:
    assert "AUTH_JWT_SECRET" in failed(minted["no-secret"], EXIT_INVALID)
    assert "ttl" in failed(minted["no-ttl"], EXIT_INVALID)
    failed(minted["bad-user"], EXIT_INVALID)


def test_keys_create_list_revoke(
    secured: httpx.Client, database_url: str, auth_container: Container, tmp_path: Path
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

    listing = start("keys", "list", database_url=database_url, AUTH_JWT_SECRET=SECRET)
    unknown = start("keys", "revoke", "0" * 16, database_url=database_url, AUTH_JWT_SECRET=SECRET)
    no_pepper = start("keys", "create", "x", database_url=database_url, cwd=tmp_path)
    listed = finish(listing)
    assert key not in listed.stdout
    assert key.rsplit("_", 1)[1] not in listed.stdout
    (shown,) = succeeded(listed)["keys"]
    assert shown["id"] == made["id"]
    assert shown["name"] == "bridge"
    assert shown["last_used_at"] is not None  # it was used just now
    assert shown["revoked_at"] is None
    assert "key" not in shown
    assert "secret_hash" not in shown
    failed(finish(unknown), EXIT_NOT_FOUND)
    failed(finish(no_pepper), EXIT_INVALID)

    revoked = succeeded(
        chatapi("keys", "revoke", made["id"], database_url=database_url, AUTH_JWT_SECRET=SECRET)
    )
    assert revoked == {"revoked": made["id"]}
    refused(secured.get("/chats/", headers=bearer(key)), key)
    (info,) = auth_container.api_keys().list()
    assert info.revoked_at is not None
