"""Fixtures of the deployment tests: the Dockerfile and the Compose files, parsed once."""

from typing import Any

import pytest

from tests.deploy import compose as compose_file
from tests.deploy.image import COMPOSE_FILE, REPLICA_COMPOSE_FILE, Image


@pytest.fixture(scope="session")
def image() -> Image:
    return Image.read()


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return compose_file.load(COMPOSE_FILE)


@pytest.fixture(scope="session")
def replica_override() -> dict[str, Any]:
    """deploy/compose.replica.yml alone: what it adds and changes."""
    return compose_file.load(REPLICA_COMPOSE_FILE)


@pytest.fixture(scope="session")
def replica_compose(compose: dict[str, Any], replica_override: dict[str, Any]) -> dict[str, Any]:
    """docker-compose.yml with deploy/compose.replica.yml over it, as Compose merges them."""
    return compose_file.merge(compose, replica_override)
