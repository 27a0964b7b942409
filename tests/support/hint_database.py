"""A PostgreSQL database for the hint channel's tests, and a plain connection to it.

The fixtures are shared through tests/integration/conftest.py.
"""

from collections.abc import Iterator

import pytest

from infrastructure.database import PgConnection, connect
from tests.conftest import EmptyDatabases


@pytest.fixture(scope="module")
def postgres_url(databases: EmptyDatabases) -> str:
    """A database of the test module's own: nothing else notifies on its channel."""
    return databases.new("postgresql")


@pytest.fixture
def admin(postgres_url: str) -> Iterator[PgConnection]:
    """A plain connection for the test's own statements (pg_notify, pg_terminate_backend)."""
    connection = connect(postgres_url, 5, "test admin")
    yield connection
    connection.close()


def terminate(admin: PgConnection, backend_pid: int | None) -> None:
    """Ends the server process of another connection, as a crash or an operator would."""
    assert backend_pid is not None
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
        assert cursor.fetchone() == (True,)
