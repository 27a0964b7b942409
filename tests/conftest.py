"""Fixtures: each database backend, a container wired to it, and a live HTTP server.

Every test that uses a database runs once against PostgreSQL and once against SQLite.
PostgreSQL comes from TEST_DATABASE_URL (a server where the user may CREATE DATABASE), or
from a throwaway cluster started here from the server binaries that can be found.
"""

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from devtools.postgres_cluster import (
    NO_BINARIES,
    PostgresCluster,
    find_bindir,
    started_cluster,
    started_standby,
)
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.database import is_sqlite
from tests.support.replicas import CaughtUpReads, caught_up, on, transactions_on
from tests.support.servers import LiveServer, container_for, new_client

BACKENDS = ["postgresql", "sqlite"]
REQUIRE_POSTGRES = os.environ.get("CHATAPI_REQUIRE_POSTGRES") == "1"
READS_ON_STANDBY = os.environ.get("CHATAPI_TEST_READS_ON_STANDBY") == "1"
_postgres_missing: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.postgres_only`: a test of what SQLite has no equivalent of (row locks
    that other transactions skip, killed sessions) runs on PostgreSQL only."""
    sqlite_only_copies = [
        item
        for item in items
        if item.get_closest_marker("postgres_only") is not None
        and isinstance(item, pytest.Function)
        and hasattr(item, "callspec")
        and item.callspec.params.get("backend") == "sqlite"
    ]
    if sqlite_only_copies:
        config.hook.pytest_deselected(items=sqlite_only_copies)
        items[:] = [item for item in items if item not in sqlite_only_copies]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in _postgres_missing:
        terminalreporter.section("POSTGRESQL NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.line(f"Only SQLite was tested: {reason}", red=True, bold=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster | None]:
    """The throwaway cluster started here, or None (TEST_DATABASE_URL given, or no binaries)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    bindir = find_bindir()
    if bindir is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"CHATAPI_REQUIRE_POSTGRES=1 but {NO_BINARIES}")
        _postgres_missing.append(NO_BINARIES)
        warnings.warn(f"PostgreSQL tests skipped: {NO_BINARIES}", stacklevel=1)
        yield None
        return
    with started_cluster(bindir) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster: PostgresCluster | None) -> str | None:
    """A PostgreSQL server URL for its maintenance database, or None when there is none."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        return given
    return None if postgres_cluster is None else postgres_cluster.url


def _standby_of(primary: PostgresCluster | None) -> Iterator[PostgresCluster]:
    if primary is None:
        pytest.skip("a standby needs the throwaway cluster started by the suite")
    with started_standby(primary) as standby:
        yield standby


@pytest.fixture(scope="session")
def standby(postgres_cluster: PostgresCluster | None) -> Iterator[PostgresCluster]:
    """A hot standby of the suite's cluster, streaming, that replays as soon as it receives."""
    yield from _standby_of(postgres_cluster)


@pytest.fixture(scope="session")
def delayed_standby(postgres_cluster: PostgresCluster | None) -> Iterator[PostgresCluster]:
    """A second hot standby, whose apply delay a test sets (`set_apply_delay`) and resets."""
    yield from _standby_of(postgres_cluster)


def create_database(server_url: str, name: str) -> str:
    """(Re)create an empty database on the server and return its URL."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


class EmptyDatabases:
    """Makes new, empty databases of either backend, for tests that need their own."""

    def __init__(self, postgres_server: str | None, directory: Path) -> None:
        self._postgres_server = postgres_server
        self._directory = directory
        self._count = 0

    def new(self, backend: str) -> str:
        self._count += 1
        name = f"chatapi_test_{self._count}"
        if backend == "sqlite":
            return f"sqlite:///{self._directory / name}.db"
        if self._postgres_server is None:
            pytest.skip("PostgreSQL is not available")
        return create_database(self._postgres_server, name)


@pytest.fixture(scope="session")
def databases(
    postgres_server: str | None, tmp_path_factory: pytest.TempPathFactory
) -> EmptyDatabases:
    return EmptyDatabases(postgres_server, tmp_path_factory.mktemp("databases"))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, databases: EmptyDatabases) -> str:
    """A migrated database of the current backend, shared by the tests of the session."""
    url = databases.new(backend)
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="session")
def session_container(database_url: str, request: pytest.FixtureRequest) -> Iterator[Container]:
    """With CHATAPI_TEST_READS_ON_STANDBY=1, PostgreSQL's reads go to a hot standby, each
    bringing the primary's position as its consistency token (tests/support/replicas.py)."""
    if not (READS_ON_STANDBY and not is_sqlite(database_url)):
        container = container_for(database_url)
        yield container
        container.shutdown_resources()
        return
    standby: PostgresCluster = request.getfixturevalue("standby")
    caught_up(database_url, standby)
    before = transactions_on(standby, database_url)
    container = container_for(database_url, read_database_url=on(standby, database_url))
    container.read_targets.set_provides(CaughtUpReads)
    yield container
    container.shutdown_resources()
    # The reads did run there: this mode cannot pass by reading from the primary.
    assert transactions_on(standby, database_url) > before


@pytest.fixture
def container(session_container: Container) -> Container:
    """The session's container over empty tables.

    A test that overrides a provider does so in a `with provider.override(...)` block.
    """
    _empty_tables(session_container)
    return session_container


# Every table of the schema, emptied before each test (on SQLite, children first).
TABLES = (
    "stream_tickets",
    "chat_members",
    "messages",
    "idempotency_keys",
    "chats",
    "chat_views",
    "chat_member_views",
    "member_event_views",
    "api_keys",
    "jobs",
)


def _empty_tables(container: Container) -> None:
    with container.write_engine().begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
        else:
            for table in TABLES:
                connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def server_url(session_container: Container) -> Iterator[str]:
    """The app served by uvicorn on a loopback port, as a deployment would serve it."""
    server = LiveServer(session_container)
    yield server.start()
    server.stop()


@pytest.fixture
def client(container: Container, server_url: str) -> Iterator[httpx.Client]:
    with new_client(server_url) as http:
        yield http
