"""Fixtures of the deployment tests: the Dockerfile and the Compose file, parsed once."""

from typing import Any

import pytest

from tests.deploy import compose as compose_file
from tests.deploy.image import COMPOSE_FILE, Image


@pytest.fixture(scope="session")
def image() -> Image:
    return Image.read()


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return compose_file.load(COMPOSE_FILE)
