"""Fixtures of the fuzz tests: the app on a PostgreSQL database of its own.

PostgreSQL only: it is the production database, and the one whose limits (64-bit ids, no NUL
in text) the inputs Schemathesis generates run into.
"""

import tempfile
from collections.abc import Callable, Iterator

import pytest
from dependency_injector import providers
from fastapi import FastAPI
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.python import asgi
from sqlalchemy import text

from api.app import create_app
from commands.create_chat import CreateChat
from commands.post_message import PostMessage
from domain.principals import user
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.conftest import EmptyDatabases
from tests.fuzz import config

# Hypothesis's caches (Unicode tables, constants of the code), written from collection on: in a
# temporary directory, removed at exit, instead of a .hypothesis/ in the repository.
_hypothesis_home = tempfile.TemporaryDirectory(prefix="chatapi-hypothesis-")
set_hypothesis_home_dir(_hypothesis_home.name)


@pytest.fixture(scope="module")
def fuzz_container(databases: EmptyDatabases) -> Iterator[Container]:
    """A container over a migrated PostgreSQL database that only the fuzz tests write to."""
    url = databases.new("postgresql")
    migrations.upgrade(url)
    container = Container()
    # No background jobs (JOBS=worker, none running): between scenarios the fuzz empties
    # every table, which a purge step racing it would deadlock with. A deleted chat stays a
    # tombstone until then, a 404 to every operation as it is while its purge waits.
    settings = Settings(
        database_url=url, auth_mode="required", auth_jwt_secret=config.SECRET, jobs="worker"
    )
    container.settings.override(providers.Object(settings))
    yield container
    container.shutdown_resources()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_container: Container) -> Iterator[FastAPI]:
    """The app under test, called in-process (ASGI) by Schemathesis."""
    app = create_app(fuzz_container)
    yield app
    # Schemathesis starts an app's lifespan on its first call and keeps it for the process.
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def empty_database(fuzz_container: Container) -> Callable[[], None]:
    """Empties every table of the fuzz database and restarts its ids."""

    def empty() -> None:
        with fuzz_container.write_engine().begin() as connection:
            tables = connection.execute(
                text(
                    "SELECT quote_ident(tablename) FROM pg_tables"
                    " WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                )
            ).scalars()
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))

    return empty


# The chat the document's examples name (`chat_id` 1), and how many messages it has: more than
# the example resume point (7), so that a stream opened there sends some.
STREAMED_CHAT = 1
STREAMED_MESSAGES = 8


@pytest.fixture(scope="module")
def streamed_chat(fuzz_container: Container, empty_database: Callable[[], None]) -> int:
    """Chat 1 of the fuzzing user, with a few messages, on otherwise empty tables: the chat
    whose stream the examples and the coverage phase open, to read events from it."""
    empty_database()
    fuzzer = user(config.USER)
    created = fuzz_container.create_chat()(CreateChat("streamed", principal=fuzzer))
    assert created.chat_id == STREAMED_CHAT
    post = fuzz_container.post_message()
    for number in range(1, STREAMED_MESSAGES + 1):
        post(PostMessage(created.chat_id, f"message {number}", principal=fuzzer))
    return created.chat_id
