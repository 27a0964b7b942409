"""The Alembic migrations are the only source of the schema: they build it, undo it, and
agree with the SQLModel metadata. Every test runs on a fresh, empty database of each backend.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from dependency_injector import providers
from sqlalchemy import BigInteger, Engine, Text, column, create_engine, insert, inspect, table, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from commands.post_message import PostMessage
from infrastructure import migrations, read_models, tables  # noqa: F401  (the last two declare every table on SQLModel.metadata)
from infrastructure.container import Container
from infrastructure.rebuild import rebuild_read_models
from infrastructure.settings import Settings
from infrastructure.types import UTCDateTime
from queries.list_chats import ListChats
from tests.conftest import EmptyDatabases
from tests.integration.helpers import chat_views_snapshot

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
            "INSERT INTO messages (chat_id, seq, text, created_at) VALUES (:chat_id, "
            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE chat_id = :chat_id), "
            ":text, :created_at)"
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


# --- 0003: the chat list's columns, filled from what is already there ------------------------

# The tables as revision 0002 left them, typed as the app writes them.
CHATS_0002 = table(
    "chats", column("id", BigInteger), column("title", Text), column("created_at", UTCDateTime)
)
MESSAGES_0002 = table(
    "messages",
    column("id", BigInteger),
    column("chat_id", BigInteger),
    column("text", Text),
    column("created_at", UTCDateTime),
)
CHAT_VIEWS_0002 = table(
    "chat_views",
    column("chat_id", BigInteger),
    column("title", Text),
    column("created_at", UTCDateTime),
    column("message_count", BigInteger),
    column("last_message_at", UTCDateTime),
)
COLUMNS_0002 = {"chat_id", "title", "created_at", "message_count", "last_message_at"}
COLUMNS_0003 = COLUMNS_0002 | {"last_activity_at", "last_message_preview"}
LIST_INDEX = "ix_chat_views_last_activity_at_chat_id"


def write_as_0002(engine: Engine) -> dict[str, int]:
    """Chats, messages and their views as the 0002 code wrote them; the chats' ids by name.

    The newest message of "tie" shares its time with the one before it (ids decide), the
    newest of "long" is 150 emoji, "empty" has none, and "old" was created before the others
    but got a message after all of them.
    """
    start = datetime(2021, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)  # in the past
    second = timedelta(seconds=1)
    plans: dict[str, list[tuple[str, int]]] = {
        "old": [("old and quiet", 1), ("old but latest", 40)],
        "tie": [("first", 10), ("tied, lower id", 11), ("tied, higher id", 11)],
        "long": [("short one", 12), ("😀" * 150, 13)],
        "longest-first": [("x" * 5000, 14), ("brief", 15)],
        "exactly-100": [("é" * 100, 16)],
        "empty": [],
    }
    ids: dict[str, int] = {}
    with engine.begin() as connection:
        for n, (title, messages) in enumerate(plans.items()):
            created_at = start + n * second
            chat_id = connection.execute(
                insert(CHATS_0002)
                .values(title=title, created_at=created_at)
                .returning(CHATS_0002.c.id)
            ).scalar_one()
            ids[title] = int(chat_id)
            for body, at in messages:
                connection.execute(
                    insert(MESSAGES_0002).values(
                        chat_id=chat_id, text=body, created_at=start + at * second
                    )
                )
            connection.execute(
                insert(CHAT_VIEWS_0002).values(
                    chat_id=chat_id,
                    title=title,
                    created_at=created_at,
                    message_count=len(messages),
                    last_message_at=start + messages[-1][1] * second if messages else None,
                )
            )
    return ids


def chat_view_columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("chat_views")}


def chat_view_indexes(engine: Engine) -> set[str]:
    return {str(index["name"]) for index in inspect(engine).get_indexes("chat_views")}


def test_0003_fills_last_activity_and_preview_as_a_rebuild_would(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url, "0002")
    engine = app_container.write_engine()
    assert chat_view_columns(engine) == COLUMNS_0002
    ids = write_as_0002(engine)

    migrations.upgrade(empty_url)

    assert migrations.is_at_head(engine)
    assert chat_view_columns(engine) == COLUMNS_0003
    assert LIST_INDEX in chat_view_indexes(engine)
    upgraded = chat_views_snapshot(engine)
    assert len(upgraded) == len(ids)
    # Exactly what a rebuild from the write model makes of the same data.
    assert rebuild_read_models(engine) == len(ids)
    assert chat_views_snapshot(engine) == upgraded

    listed = app_container.list_chats()(ListChats(limit=100))
    by_title = {chat.title: chat for chat in listed.chats}
    assert [chat.title for chat in listed.chats] == [
        "old",
        "exactly-100",
        "longest-first",
        "long",
        "tie",
        "empty",
    ]
    assert [chat.id for chat in listed.chats] == [ids[chat.title] for chat in listed.chats]
    assert by_title["old"].last_message_preview == "old but latest"
    assert by_title["tie"].last_message_preview == "tied, higher id"
    assert by_title["long"].last_message_preview == "😀" * 100
    assert by_title["longest-first"].last_message_preview == "brief"
    assert by_title["exactly-100"].last_message_preview == "é" * 100
    assert by_title["empty"].last_message_preview is None
    for chat in listed.chats:
        assert chat.last_activity_at == (chat.last_message_at or chat.created_at)


def test_0003_rows_keep_working_after_the_upgrade(empty_url: str, app_container: Container) -> None:
    migrations.upgrade(empty_url, "0002")
    engine = app_container.write_engine()
    ids = write_as_0002(engine)
    migrations.upgrade(empty_url)

    app_container.post_message()(PostMessage(chat_id=ids["empty"], text="y" * 120))

    listed = app_container.list_chats()(ListChats(limit=2))
    assert listed.chats[0].id == ids["empty"]
    assert listed.chats[0].last_message_preview == "y" * 100
    assert listed.chats[1].id == ids["old"]
    assert listed.next_cursor is not None
    projected = chat_views_snapshot(engine)
    rebuild_read_models(engine)
    assert chat_views_snapshot(engine) == projected


def test_0003_downgrades_and_upgrades_again(empty_url: str, app_container: Container) -> None:
    migrations.upgrade(empty_url, "0002")
    engine = app_container.write_engine()
    write_as_0002(engine)
    as_0002 = chat_views_snapshot(engine)
    migrations.upgrade(empty_url)
    upgraded = chat_views_snapshot(engine)

    migrations.downgrade(empty_url, "0002")

    assert chat_view_columns(engine) == COLUMNS_0002
    assert LIST_INDEX not in chat_view_indexes(engine)
    assert chat_views_snapshot(engine) == as_0002
    migrations.upgrade(empty_url)
    assert chat_views_snapshot(engine) == upgraded
    assert schema_diff(engine) == []
