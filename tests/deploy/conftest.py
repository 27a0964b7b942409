"""Fixtures of the deployment tests: the Dockerfile and the Compose files, parsed once."""

import secrets
from typing import Any

import pytest

from tests.deploy import compose as compose_file
from tests.deploy.image import COMPOSE_FILE, REPLICA_COMPOSE_FILE, Image

# Where the committed example of an env file is: beside it, with this suffix.
EXAMPLE_SUFFIX = ".example"


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


def example_env_file(path: str) -> dict[str, str]:
    """The committed example of the env file at `path` (relative to the compose file)."""
    example = COMPOSE_FILE.parent / (path + EXAMPLE_SUFFIX)
    assert example.is_file(), f"{path} has no committed example {example.name}"
    return compose_file.read_env_file(example.read_text())


@pytest.fixture(scope="session")
def env_file_contents(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    """What each env file of the compose file holds here: its example, each placeholder
    replaced by a fresh random value, as whoever deploys makes it. (The real files are
    theirs, kept out of git: the tests never read them.)"""
    paths = {
        path for service in compose["services"].values() for path in compose_file.env_files(service)
    }
    return {
        path: {name: secrets.token_urlsafe(48) for name in example_env_file(path)}
        for path in sorted(paths)
    }
