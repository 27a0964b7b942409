"""Fixtures of the deployment tests: the Dockerfile and the Compose files, parsed once."""

import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.postgres_cluster import NO_BINARIES, find_bindir
from tests.conftest import REQUIRE_POSTGRES
from tests.deploy import compose as compose_file
from tests.deploy.image import COMPOSE_FILE, REPLICA_COMPOSE_FILE, REPO, Image

# Where the committed example of an env file is: beside it, with this suffix.
EXAMPLE_SUFFIX = ".example"
# What makes the env files of deploy/ (deploy/chatapi.env.example says to run it).
MAKE_ENV_FILES = REPO / "deploy" / "make-env-files.sh"
ENV_FILES_DIRECTORY = "deploy"  # where the compose files' env files are, from the repository

EnvFiles = dict[str, dict[str, str]]


@pytest.fixture(scope="session")
def image() -> Image:
    return Image.read()


def raw(path: Path) -> dict[str, Any]:
    """A compose file as written, its `${...}` not interpolated."""
    return compose_file.load(path)


def interpolated(path: Path, variables: dict[str, str] | None = None) -> dict[str, Any]:
    """A compose file as Compose runs it with `variables` (by default none: their defaults)."""
    document = compose_file.interpolate(raw(path), variables or {})
    assert isinstance(document, dict), path
    return document


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose runs it with none of its variables set (their defaults)."""
    return interpolated(COMPOSE_FILE)


@pytest.fixture(scope="session")
def replica_override() -> dict[str, Any]:
    """deploy/compose.replica.yml alone: what it adds and changes."""
    return interpolated(REPLICA_COMPOSE_FILE)


@pytest.fixture(scope="session")
def replica_compose(compose: dict[str, Any], replica_override: dict[str, Any]) -> dict[str, Any]:
    """docker-compose.yml with deploy/compose.replica.yml over it, as Compose merges them."""
    return compose_file.merge(compose, replica_override)


def example_env_file(path: str) -> dict[str, str]:
    """The committed example of the env file at `path` (relative to the compose file)."""
    example = COMPOSE_FILE.parent / (path + EXAMPLE_SUFFIX)
    assert example.is_file(), f"{path} has no committed example {example.name}"
    return compose_file.read_env_file(example.read_text())


def make_env_files(directory: Path) -> subprocess.CompletedProcess[str]:
    """deploy/make-env-files.sh, run as whoever deploys runs it, writing into `directory`."""
    return subprocess.run(
        ["/bin/sh", str(MAKE_ENV_FILES), str(directory)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def read_env_files(directory: Path) -> EnvFiles:
    """{path as the compose files name it (deploy/NAME): its variables} for each file there."""
    return {
        f"{ENV_FILES_DIRECTORY}/{made.name}": compose_file.read_env_file(made.read_text())
        for made in sorted(directory.iterdir())
    }


@pytest.fixture(scope="session")
def env_file_contents(tmp_path_factory: pytest.TempPathFactory) -> EnvFiles:
    """What each env file of the compose files holds here: made by deploy/make-env-files.sh
    into a directory of the tests' own, as whoever deploys makes them into deploy/. (The
    real files are theirs, kept out of git: the tests never read them.)"""
    directory = tmp_path_factory.mktemp("env-files")
    made = make_env_files(directory)
    assert made.returncode == 0, made.stdout + made.stderr
    return read_env_files(directory)


@pytest.fixture(scope="session")
def bindir() -> Path:
    """This machine's PostgreSQL server binaries, which stand in for the postgres image's."""
    found = find_bindir()
    if found is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"CHATAPI_REQUIRE_POSTGRES=1 but {NO_BINARIES}")
        pytest.skip(NO_BINARIES)
    return found
