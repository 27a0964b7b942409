"""Fixtures of the live-delivery tests: a PostgreSQL database of the test's own, Chromium."""

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from infrastructure import migrations
from tests.browser.conftest import chromium  # noqa: F401  (a fixture, used by test_browser)
from tests.conftest import EmptyDatabases
from tests.live.listeners import HintListeners
from tests.support.database import inspector


@pytest.fixture
def postgres_url(databases: EmptyDatabases) -> str:
    """A new migrated PostgreSQL database: its hint connections are the test's servers' only."""
    url = databases.new("postgresql")
    migrations.upgrade(url)
    return url


@pytest.fixture
def hint_listeners(postgres_url: str, postgres_server: str) -> Iterator[HintListeners]:
    """The LISTEN connections on `postgres_url`, seen from the server's maintenance database."""
    with inspector(postgres_server) as admin:
        yield HintListeners(admin, str(make_url(postgres_url).database))
