"""The Alembic migrations are the only source of the schema: they build it, undo it, and
agree with the SQLModel metadata. Every test runs on a fresh, empty database of each backend.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from dependency_injector import providers
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

import infrastructure.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.conftest import EmptyDatabases

TABLES = {"chats", "messages", "chat_views", "idempotency_keys"}
VIEWS = {"message_views"}


@pytest.fixture
def empty_url(backend: str, databases: EmptyDatabases) -> str:
    """The URL of a new, empty database of the current backend."""
    return databases.new(backend)


@pytest.fixture
def plain_engine(empty_url: str) -> Iterator[Engine]:
    """A bare SQLAlchemy engine on the empty database (no settings of the app's)."""
    engine = create_engine(empty_url)
    yield engine
    engine.dispose()


@pytest.fixture
def app_container(empty_url: str) -> Iterator[Container]:
    """A container of the app configured for the empty database."""
    container = Container()
    container.settings.override(providers.Object(Settings(database_url=empty_url)))
    yield container
    container.shutdown_resources()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def view_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_view_names())


def schema_diff(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match the metadata."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "target_metadata": SQLModel.metadata,
                "compare_type": True,
                "render_as_batch": connection.dialect.name == "sqlite",
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))


def test_an_empty_database_is_not_at_head(empty_url: str, plain_engine: Engine) -> None:
    assert table_names(plain_engine) == set()
    assert migrations.is_at_head(plain_engine) is False


def test_upgrade_creates_the_tables_and_the_view(empty_url: str, plain_engine: Engine) -> None:
    migrations.upgrade(empty_url)

    assert table_names(plain_engine) == TABLES | {"alembic_version"}
    assert view_names(plain_engine) == VIEWS
    assert migrations.is_at_head(plain_engine) is True


def test_upgrade_creates_the_cascading_foreign_key(empty_url: str, plain_engine: Engine) -> None:
    migrations.upgrade(empty_url)

    foreign_keys = inspect(plain_engine).get_foreign_keys("messages")
    assert len(foreign_keys) == 1, foreign_keys
    (key,) = foreign_keys
    assert key["constrained_columns"] == ["chat_id"]
    assert key["referred_table"] == "chats"
    assert key["referred_columns"] == ["id"]
    assert key["options"].get("ondelete", "").upper() == "CASCADE", key
    # The read model has no foreign key: it may live elsewhere and is rebuilt at will.
    assert inspect(plain_engine).get_foreign_keys("chat_views") == []


def test_upgrade_creates_the_index_on_chat_id_and_id(empty_url: str, plain_engine: Engine) -> None:
    migrations.upgrade(empty_url)

    indexes = inspect(plain_engine).get_indexes("messages")
    columns = {tuple(index["column_names"]): index["name"] for index in indexes}
    assert ("chat_id", "id") in columns, indexes
    assert columns[("chat_id", "id")] == "ix_messages_chat_id_id"


def test_upgrade_is_idempotent(empty_url: str, plain_engine: Engine) -> None:
    migrations.upgrade(empty_url)
    migrations.upgrade(empty_url)  # already at head: nothing to do, nothing fails

    assert table_names(plain_engine) == TABLES | {"alembic_version"}
    assert migrations.is_at_head(plain_engine) is True


def test_downgrade_to_base_leaves_only_alembic_version(
    empty_url: str, plain_engine: Engine
) -> None:
    migrations.upgrade(empty_url)
    migrations.downgrade(empty_url, "base")

    assert table_names(plain_engine) == {"alembic_version"}
    assert view_names(plain_engine) == set()
    assert migrations.is_at_head(plain_engine) is False
    with plain_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 0


def test_upgrade_after_downgrade_rebuilds_the_schema(empty_url: str, plain_engine: Engine) -> None:
    migrations.upgrade(empty_url)
    migrations.downgrade(empty_url, "base")
    migrations.upgrade(empty_url)

    assert table_names(plain_engine) == TABLES | {"alembic_version"}
    assert view_names(plain_engine) == VIEWS
    assert migrations.is_at_head(plain_engine) is True
    assert schema_diff(plain_engine) == []


def test_migrated_schema_matches_the_metadata(empty_url: str, plain_engine: Engine) -> None:
    migrations.upgrade(empty_url)

    assert schema_diff(plain_engine) == []


def test_the_drift_check_does_see_a_difference(empty_url: str, plain_engine: Engine) -> None:
    """The check above is not vacuous: a missing index is reported as drift."""
    migrations.upgrade(empty_url)
    with plain_engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_messages_chat_id_id"))

    diff = schema_diff(plain_engine)
    assert any(entry[0] == "add_index" for entry in diff), diff


def insert_chat(connection: Any, title: str) -> int:
    connection.execute(
        text("INSERT INTO chats (title, created_at) VALUES (:title, :created_at)"),
        {"title": title, "created_at": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)},
    )
    chat_id = connection.execute(
        text("SELECT id FROM chats WHERE title = :title"), {"title": title}
    ).scalar_one()
    return int(chat_id)


def insert_message(connection: Any, chat_id: int, body: str) -> None:
    connection.execute(
        text(
            "INSERT INTO messages (chat_id, text, created_at) VALUES (:chat_id, :text, :created_at)"
        ),
        {"chat_id": chat_id, "text": body, "created_at": datetime(2030, 1, 2, 3, 4, 6, tzinfo=UTC)},
    )


def count(connection: Any, sql: str, **params: Any) -> int:
    return int(connection.execute(text(sql), params).scalar_one())


def test_the_database_cascades_a_chat_delete_to_its_messages(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url)
    engine = app_container.write_engine()

    with engine.begin() as connection:
        doomed = insert_chat(connection, "doomed")
        kept = insert_chat(connection, "kept")
        for n in range(3):
            insert_message(connection, doomed, f"doomed {n}")
        insert_message(connection, kept, "kept 0")

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM chats WHERE id = :id"), {"id": doomed})

    with engine.connect() as connection:
        assert count(connection, "SELECT count(*) FROM chats WHERE id = :id", id=doomed) == 0
        assert (
            count(connection, "SELECT count(*) FROM messages WHERE chat_id = :id", id=doomed) == 0
        )
        assert (
            count(connection, "SELECT count(*) FROM message_views WHERE chat_id = :id", id=doomed)
            == 0
        )
        assert count(connection, "SELECT count(*) FROM messages WHERE chat_id = :id", id=kept) == 1


def test_the_database_refuses_a_message_of_a_missing_chat(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url)
    engine = app_container.write_engine()

    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_message(connection, 424242, "orphan")

    with engine.connect() as connection:
        assert count(connection, "SELECT count(*) FROM messages") == 0


def test_the_database_enforces_the_length_checks(empty_url: str, app_container: Container) -> None:
    migrations.upgrade(empty_url)
    engine = app_container.write_engine()

    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_chat(connection, "")
    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_chat(connection, "x" * 201)
    with engine.begin() as connection:
        chat_id = insert_chat(connection, "x" * 200)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_message(connection, chat_id, "y" * 5001)
    with engine.begin() as connection:
        insert_message(connection, chat_id, "😀" * 5000)  # characters, not bytes

    with engine.connect() as connection:
        assert count(connection, "SELECT count(*) FROM chats") == 1
        assert count(connection, "SELECT count(*) FROM messages") == 1
