"""Fixtures of the API tests; the live server and the empty tables come from tests/conftest.py."""

import httpx
import pytest

from infrastructure.container import Container
from tests.api.helpers import Json, create_chat


@pytest.fixture
def chat(client: httpx.Client) -> Json:
    """A freshly created, empty chat."""
    return create_chat(client)


@pytest.fixture
def max_body_size(container: Container) -> int:
    """The largest request body the server under test accepts."""
    size = container.settings().max_body_size
    assert isinstance(size, int)
    assert size == 64 * 1024  # the documented default, which these tests exercise
    return size


@pytest.fixture
def spec(client: httpx.Client) -> Json:
    """The served OpenAPI document."""
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: Json = response.json()
    return document
