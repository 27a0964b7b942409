"""Fixtures of the identity and access tests: the app served with AUTH_MODE=required over the
session's database, user tokens made here with PyJWT (independently of the app's own
minting), and API keys made through the container as `chatapi keys create` makes them."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from infrastructure.container import Container
from tests.support.servers import LiveServer, container_for, new_client

SECRET = "test-secret-of-at-least-32-bytes-0123456789"
AUDIENCE = "chatapi"


def token(user_id: str, secret: str = SECRET, **claims: Any) -> str:
    """A user token as the users' application would mint it; `claims` override or, set to
    None, leave out the defaults (aud, exp an hour ahead, iat now)."""
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": user_id,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@pytest.fixture(scope="session")
def auth_container(database_url: str) -> Iterator[Container]:
    """A container over the session's database with AUTH_MODE=required."""
    container = container_for(
        database_url, auth_mode="required", auth_jwt_secret=SECRET, access_log=False
    )
    yield container
    container.shutdown_resources()


@pytest.fixture(scope="session")
def auth_server_url(auth_container: Container) -> Iterator[str]:
    server = LiveServer(auth_container)
    yield server.start()
    server.stop()


@pytest.fixture
def secured(
    container: Container, auth_container: Container, auth_server_url: str
) -> Iterator[httpx.Client]:
    """A client of the AUTH_MODE=required server, over empty tables (`container` empties
    them), sending no credential unless a request says so."""
    with new_client(auth_server_url) as client:
        yield client


@pytest.fixture
def as_user(secured: httpx.Client) -> Callable[[str], dict[str, str]]:
    """The headers a user's requests carry: as_user("ann")."""
    return lambda user_id: bearer(token(user_id))


@pytest.fixture
def service_key(auth_container: Container, secured: httpx.Client) -> str:
    """A fresh API key, as `chatapi keys create` makes it."""
    _, key = auth_container.api_keys().create("test service")
    return key
