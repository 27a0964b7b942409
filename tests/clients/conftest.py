"""Fixtures of the generated-client tests: the client openapi-python-client generates from the
app's /openapi.json, and the app served with AUTH_MODE=required for it to call."""

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import jwt
import pytest
from dependency_injector import providers

from api.app import create_app
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.servers import container_for, served

BIN = Path(sys.executable).parent
PACKAGE = "chatapi_client"
# No post hooks: they would run ruff over the generated code, which changes nothing tested.
GENERATOR_CONFIG = f'{{"package_name_override": "{PACKAGE}", "post_hooks": []}}'
GENERATE_SECONDS = 60
SECRET = "client-test-secret-of-at-least-32-bytes-0123"
USER = "ann"


async def served_document() -> httpx.Response:
    container = Container()
    container.settings.override(providers.Object(Settings(database_url="sqlite://")))
    transport = httpx.ASGITransport(create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://chatapi") as client:
        return await client.get("/openapi.json")


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the generated package, from the document the app serves (which
    needs no database)."""
    directory = tmp_path_factory.mktemp("generated-client")
    response = anyio.run(served_document)
    assert response.status_code == 200, response.text
    (directory / "openapi.json").write_bytes(response.content)
    (directory / "config.json").write_text(GENERATOR_CONFIG)
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path=openapi.json",
            "--config=config.json",
            f"--output-path={PACKAGE}",
            "--meta=none",
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=GENERATE_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Every part of the document understood: nothing left out of the client.
    assert "Warning" not in output, output
    return directory


def user_token(user_id: str) -> str:
    """A user's token, as the users' application signs it."""
    expires = datetime.now(UTC) + timedelta(hours=1)
    claims = {"sub": user_id, "aud": "chatapi", "exp": int(expires.timestamp())}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
def secured_url(container: Container, database_url: str) -> Iterator[str]:
    """The app with AUTH_MODE=required over the test's empty tables (`container` empties
    them), as deployments serve it."""
    own = container_for(database_url, auth_mode="required", auth_jwt_secret=SECRET)
    with served(own) as base_url:
        yield base_url
