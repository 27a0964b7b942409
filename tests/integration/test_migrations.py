"""The Alembic migrations are the only source of the schema: they build it, undo it, and
agree with the SQLModel metadata. Every test runs on a fresh, empty database of each backend.
"""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from dependency_injector import providers
from sqlalchemy import BigInteger, Engine, Text, column, create_engine, insert, inspect, table, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from commands.create_chat import CreateChat
from commands.post_message import PostMessage, PostMessageResult
from domain.errors import IdempotencyKeyReused
from domain.principals import LOCAL
from infrastructure import migrations, read_models, tables  # noqa: F401  (the last two declare every table on SQLModel.metadata)
from infrastructure.container import Container
from infrastructure.idempotency import fingerprint
from infrastructure.rebuild import rebuild_read_models
from infrastructure.settings import Settings
from infrastructure.types import UTCDateTime
from queries.get_messages_after import GetMessagesAfter
from queries.list_chats import ListChats
from tests.conftest import EmptyDatabases
from tests.integration.helpers import chat_views_snapshot
from tests.support.clocks import StepClock
from tests.support.database import count_rows

TABLES = {
    "chats",
    "messages",
    "chat_views",
    "idempotency_keys",
    "chat_members",
    "api_keys",
    "stream_tickets",
    "chat_member_views",
    "member_event_views",
    "jobs",
}
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


def test_upgrade_indexes_messages_on_chat_id_and_seq_alone(
    empty_url: str, plain_engine: Engine
) -> None:
    """Every read of a chat's messages orders by seq; the cascade from chats needs chat_id
    first. One index serves both (0005 dropped the one on chat_id and id)."""
    migrations.upgrade(empty_url)

    indexes = inspect(plain_engine).get_indexes("messages")
    assert {index["name"]: tuple(index["column_names"]) for index in indexes} == {
        "ix_messages_chat_id_seq": ("chat_id", "seq")
    }, indexes


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
        connection.execute(text("DROP INDEX ix_messages_chat_id_seq"))

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
COLUMNS_0004 = COLUMNS_0003 | {"last_seq"}
COLUMNS_0007 = COLUMNS_0004 | {"last_member_event"}
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
    assert chat_view_columns(engine) == COLUMNS_0007  # head: 0004 to 0007 followed
    assert LIST_INDEX in chat_view_indexes(engine)
    upgraded = chat_views_snapshot(engine)
    assert len(upgraded) == len(ids)
    # Exactly what a rebuild from the write model makes of the same data.
    assert rebuild_read_models(engine) == len(ids)
    assert chat_views_snapshot(engine) == upgraded

    listed = app_container.list_chats()(ListChats(limit=100, principal=LOCAL))
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

    app_container.post_message()(PostMessage(chat_id=ids["empty"], text="y" * 120, principal=LOCAL))

    listed = app_container.list_chats()(ListChats(limit=2, principal=LOCAL))
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


# --- 0004: per-chat seq, numbered from what is already there ---------------------------------

# The tables as revision 0003 left them (chats and messages as 0002 left them).
CHAT_VIEWS_0003 = table(
    "chat_views",
    *(column(c.name, c.type) for c in CHAT_VIEWS_0002.columns),
    column("last_activity_at", UTCDateTime),
    column("last_message_preview", Text),
)
IDEMPOTENCY_KEYS = table(
    "idempotency_keys",
    column("scope", Text),
    column("key", Text),
    column("chat_id", BigInteger),
    column("fingerprint", Text),
    column("result", Text),
    column("created_at", UTCDateTime),
)
MESSAGE_VIEW_COLUMNS_0003 = ["id", "chat_id", "text", "created_at"]
MESSAGE_VIEW_COLUMNS_0004 = ["id", "chat_id", "seq", "text", "created_at"]
# The messages as 0004 to 0006 have them (0007 adds their author).
MESSAGES_0004 = "SELECT id, chat_id, seq, text, created_at FROM messages ORDER BY id"
SEQ_INDEX = "ix_messages_chat_id_seq"
CREATE_CHAT_KEY = "create-a"

# The order in which the 0003 code took the posts: the chats' messages interleave by id.
POSTS_0003 = ["a", "b", "a", "c", "b", "a", "a", "c", "b", "a"]
# The posts sent with an idempotency key (by their place above), and the key.
KEYED_0003 = {0: "first-of-a", 4: "second-of-b", 7: "second-of-c", 9: "last-of-a"}


@dataclass(frozen=True, slots=True)
class Posted0003:
    message_id: int
    chat_id: int
    text: str
    created_at: datetime
    key: str | None


@dataclass(frozen=True, slots=True)
class Written0003:
    chats: dict[str, int]  # ids by title; "quiet" has no message
    posts: list[Posted0003]  # in the order they were taken

    def expected_seqs(self) -> dict[int, int]:
        """Message id -> its seq: 1, 2, 3, ... within its chat in the order of the posts."""
        taken: Counter[int] = Counter()
        seqs = {}
        for post in self.posts:
            taken[post.chat_id] += 1
            seqs[post.message_id] = taken[post.chat_id]
        return seqs

    def counts(self) -> dict[int, int]:
        return {
            chat_id: sum(p.chat_id == chat_id for p in self.posts)
            for chat_id in self.chats.values()
        }


def stored_0003_result(post: Posted0003) -> str:
    """A message result as the 0003 code stored it under its key: no seq."""
    return json.dumps(
        {
            "message_id": post.message_id,
            "chat_id": post.chat_id,
            "text": post.text,
            "created_at": post.created_at.isoformat().replace("+00:00", "Z"),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def write_as_0003(engine: Engine) -> Written0003:
    """Chats, interleaved messages, their views and idempotency keys as the 0003 code wrote
    them. Two posts share a time (ids order them); keyed texts need escaping in JSON."""
    start = datetime(2021, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    now = datetime.now(UTC)  # the keys must not have expired
    chats: dict[str, int] = {}
    posts: list[Posted0003] = []
    with engine.begin() as connection:
        for n, title in enumerate(["a", "b", "c", "quiet"]):
            chats[title] = connection.execute(
                insert(CHATS_0002)
                .values(title=title, created_at=start + timedelta(seconds=n))
                .returning(CHATS_0002.c.id)
            ).scalar_one()
        for n, title in enumerate(POSTS_0003):
            key = KEYED_0003.get(n)
            body = f'{title} {n} "quoted" 😀' if key else f"{title} {n}"
            at = start + timedelta(minutes=1, seconds=min(n, 5))  # posts 5.. share a second
            message_id = connection.execute(
                insert(MESSAGES_0002)
                .values(chat_id=chats[title], text=body, created_at=at)
                .returning(MESSAGES_0002.c.id)
            ).scalar_one()
            posts.append(Posted0003(message_id, chats[title], body, at, key))
        for post in posts:
            if post.key is not None:
                connection.execute(
                    insert(IDEMPOTENCY_KEYS).values(
                        scope=f"post_message:{post.chat_id}",
                        key=post.key,
                        chat_id=post.chat_id,
                        fingerprint=fingerprint({"text": post.text}),
                        result=stored_0003_result(post),
                        created_at=now,
                    )
                )
        connection.execute(
            insert(IDEMPOTENCY_KEYS).values(
                scope="create_chat",
                key=CREATE_CHAT_KEY,
                chat_id=None,
                fingerprint=fingerprint({"title": "a"}),
                result=json.dumps(
                    {
                        "chat_id": chats["a"],
                        "title": "a",
                        "created_at": start.isoformat().replace("+00:00", "Z"),
                    },
                    separators=(",", ":"),
                ),
                created_at=now,
            )
        )
        for n, (title, chat_id) in enumerate(chats.items()):
            own = [post for post in posts if post.chat_id == chat_id]
            created_at = start + timedelta(seconds=n)
            last_at = own[-1].created_at if own else None
            connection.execute(
                insert(CHAT_VIEWS_0003).values(
                    chat_id=chat_id,
                    title=title,
                    created_at=created_at,
                    message_count=len(own),
                    last_message_at=last_at,
                    last_activity_at=last_at or created_at,
                    last_message_preview=own[-1].text if own else None,
                )
            )
    assert [post.message_id for post in posts] == sorted(post.message_id for post in posts)
    return Written0003(chats, posts)


def column_names(engine: Engine, table_name: str) -> list[str]:
    return [str(column["name"]) for column in inspect(engine).get_columns(table_name)]


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql)).all()]


def seqs_by_id(engine: Engine, relation: str) -> dict[int, int]:
    return dict(rows(engine, f"SELECT id, seq FROM {relation} ORDER BY id"))


def last_seqs(engine: Engine, relation: str, id_column: str) -> dict[int, int]:
    return dict(rows(engine, f"SELECT {id_column}, last_seq FROM {relation}"))


def test_0004_numbers_each_chats_messages_in_id_order(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url, "0003")
    engine = app_container.write_engine()
    assert column_names(engine, "message_views") == MESSAGE_VIEW_COLUMNS_0003
    written = write_as_0003(engine)

    migrations.upgrade(empty_url)

    assert migrations.is_at_head(engine)
    assert "last_seq" in column_names(engine, "chats")
    assert "seq" in column_names(engine, "messages")
    assert chat_view_columns(engine) == COLUMNS_0007
    assert column_names(engine, "message_views") == [*MESSAGE_VIEW_COLUMNS_0004, "author"]
    expected = written.expected_seqs()
    assert len(expected) == len(POSTS_0003)
    assert seqs_by_id(engine, "messages") == expected
    assert seqs_by_id(engine, "message_views") == expected
    counts = written.counts()
    assert counts == {
        written.chats["a"]: 5,
        written.chats["b"]: 3,
        written.chats["c"]: 2,
        written.chats["quiet"]: 0,
    }
    assert last_seqs(engine, "chats", "id") == counts
    assert last_seqs(engine, "chat_views", "chat_id") == counts
    # Exactly what a rebuild from the write model makes of the same data.
    upgraded = chat_views_snapshot(engine)
    assert rebuild_read_models(engine) == len(written.chats)
    assert chat_views_snapshot(engine) == upgraded

    # The read side reads the chats forward by seq, in the posts' order.
    read_after = app_container.get_messages_after()
    for chat_id, count in counts.items():
        page = read_after(GetMessagesAfter(chat_id=chat_id, after=0, limit=100, principal=LOCAL))
        own = [post for post in written.posts if post.chat_id == chat_id]
        assert page.last_seq == count
        assert [m.seq for m in page.messages] == list(range(1, count + 1))
        assert [m.id for m in page.messages] == [post.message_id for post in own]
        assert [m.text for m in page.messages] == [post.text for post in own]
    # New posts continue each chat's numbering.
    post = app_container.post_message()
    for chat_id, count in counts.items():
        assert (
            post(PostMessage(chat_id=chat_id, text="after 0004", principal=LOCAL)).seq == count + 1
        )
    assert last_seqs(engine, "chat_views", "chat_id") == {
        chat_id: count + 1 for chat_id, count in counts.items()
    }


def test_0004_gives_stored_message_results_their_seq(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url, "0003")
    engine = app_container.write_engine()
    written = write_as_0003(engine)
    create_chat_key_before = rows(
        engine, "SELECT * FROM idempotency_keys WHERE scope = 'create_chat'"
    )

    migrations.upgrade(empty_url)

    expected = written.expected_seqs()
    keyed = [post for post in written.posts if post.key is not None]
    assert len(keyed) == len(KEYED_0003)
    post = app_container.post_message()
    for first in keyed:
        retried = post(
            PostMessage(
                chat_id=first.chat_id, text=first.text, idempotency_key=first.key, principal=LOCAL
            )
        )
        assert retried.replayed is True
        assert retried == PostMessageResult(
            first.message_id,
            first.chat_id,
            expected[first.message_id],
            first.text,
            first.created_at,
        )
    # The replays posted nothing and used up no seq: they rolled back.
    assert count_rows(engine, "messages") == len(POSTS_0003)
    assert last_seqs(engine, "chats", "id") == written.counts()
    # The key still belongs to its first request.
    with pytest.raises(IdempotencyKeyReused):
        post(
            PostMessage(
                chat_id=keyed[0].chat_id,
                text="other",
                idempotency_key=keyed[0].key,
                principal=LOCAL,
            )
        )
    # A create_chat result has no seq to gain: untouched, and still replayed.
    assert (
        rows(engine, "SELECT * FROM idempotency_keys WHERE scope = 'create_chat'")
        == create_chat_key_before
    )
    again = app_container.create_chat()(
        CreateChat(title="a", idempotency_key=CREATE_CHAT_KEY, principal=LOCAL)
    )
    assert again.replayed is True
    assert again.chat_id == written.chats["a"]
    # A key used after the upgrade stores and replays the seq the post took.
    a = written.chats["a"]
    fresh = post(
        PostMessage(chat_id=a, text="keyed after 0004", idempotency_key="after", principal=LOCAL)
    )
    assert fresh.seq == 6
    assert (
        post(
            PostMessage(
                chat_id=a, text="keyed after 0004", idempotency_key="after", principal=LOCAL
            )
        )
        == fresh
    )
    assert post(PostMessage(chat_id=a, text="not keyed", principal=LOCAL)).seq == 7


def test_0004_downgrades_and_upgrades_again(empty_url: str, app_container: Container) -> None:
    migrations.upgrade(empty_url, "0003")
    engine = app_container.write_engine()
    written = write_as_0003(engine)
    messages_0003 = rows(engine, "SELECT * FROM messages ORDER BY id")
    views_0003 = chat_views_snapshot(engine)
    migrations.upgrade(empty_url)
    messages_0004 = rows(engine, "SELECT * FROM messages ORDER BY id")
    views_0004 = chat_views_snapshot(engine)
    keys_0004 = rows(engine, "SELECT * FROM idempotency_keys ORDER BY scope, key")

    migrations.downgrade(empty_url, "0003")

    assert not migrations.is_at_head(engine)
    assert "last_seq" not in column_names(engine, "chats")
    assert "seq" not in column_names(engine, "messages")
    assert chat_view_columns(engine) == COLUMNS_0003
    assert column_names(engine, "message_views") == MESSAGE_VIEW_COLUMNS_0003
    assert SEQ_INDEX not in {index["name"] for index in inspect(engine).get_indexes("messages")}
    assert rows(engine, "SELECT * FROM messages ORDER BY id") == messages_0003
    assert chat_views_snapshot(engine) == views_0003

    migrations.upgrade(empty_url)

    assert rows(engine, "SELECT * FROM messages ORDER BY id") == messages_0004
    assert chat_views_snapshot(engine) == views_0004
    assert rows(engine, "SELECT * FROM idempotency_keys ORDER BY scope, key") == keys_0004
    assert schema_diff(engine) == []
    last = written.posts[-1]
    replayed = app_container.post_message()(
        PostMessage(chat_id=last.chat_id, text=last.text, idempotency_key=last.key, principal=LOCAL)
    )
    assert replayed.replayed is True
    assert replayed.message_id == last.message_id
    assert replayed.seq == written.expected_seqs()[last.message_id]


def insert_numbered(connection: Any, chat_id: int, seq: int | None) -> None:
    connection.execute(
        text(
            "INSERT INTO messages (chat_id, seq, text, created_at) "
            "VALUES (:chat_id, :seq, 'numbered', :created_at)"
        ),
        {"chat_id": chat_id, "seq": seq, "created_at": datetime(2030, 1, 2, 3, 4, 6, tzinfo=UTC)},
    )


def test_0004_the_database_refuses_a_seq_twice_in_a_chat(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url)
    engine = app_container.write_engine()
    (index,) = [i for i in inspect(engine).get_indexes("messages") if i["name"] == SEQ_INDEX]
    assert index["column_names"] == ["chat_id", "seq"]
    assert index["unique"]
    with engine.begin() as connection:
        first = insert_chat(connection, "first")
        second = insert_chat(connection, "second")
        insert_numbered(connection, first, 1)
        insert_numbered(connection, second, 1)  # the same seq in another chat

    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_numbered(connection, first, 1)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_numbered(connection, first, None)  # every message has its place

    with engine.connect() as connection:
        assert count(connection, "SELECT count(*) FROM messages") == 2
        assert count(connection, "SELECT count(*) FROM messages WHERE chat_id = :id", id=first) == 1


# --- 0005: no index on (chat_id, id) ----------------------------------------------------------

ID_INDEX = "ix_messages_chat_id_id"


def message_indexes(engine: Engine) -> dict[str, list[str]]:
    return {
        str(index["name"]): [str(name) for name in index["column_names"]]
        for index in inspect(engine).get_indexes("messages")
    }


def test_0005_drops_the_chat_id_id_index_and_its_downgrade_restores_it(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url, "0004")
    engine = app_container.write_engine()
    assert message_indexes(engine) == {ID_INDEX: ["chat_id", "id"], SEQ_INDEX: ["chat_id", "seq"]}
    with engine.begin() as connection:
        chat_id = insert_chat(connection, "before 0005")
        for n in range(5):
            insert_message(connection, chat_id, f"m{n}")
    messages_0004 = rows(engine, MESSAGES_0004)
    assert not migrations.is_at_head(engine)  # the service refuses it until migrated

    migrations.upgrade(empty_url)

    assert migrations.is_at_head(engine)
    assert message_indexes(engine) == {SEQ_INDEX: ["chat_id", "seq"]}
    assert rows(engine, MESSAGES_0004) == messages_0004
    assert schema_diff(engine) == []

    migrations.downgrade(empty_url, "0004")

    assert not migrations.is_at_head(engine)
    assert message_indexes(engine) == {ID_INDEX: ["chat_id", "id"], SEQ_INDEX: ["chat_id", "seq"]}
    assert rows(engine, MESSAGES_0004) == messages_0004

    migrations.upgrade(empty_url)

    assert migrations.is_at_head(engine)
    assert message_indexes(engine) == {SEQ_INDEX: ["chat_id", "seq"]}
    assert schema_diff(engine) == []


# --- 0006: each chat's newest message time, on the chat's row ---------------------------------

CHATS_0005 = table(
    "chats",
    column("id", BigInteger),
    column("title", Text),
    column("created_at", UTCDateTime),
    column("last_seq", BigInteger),
)
MESSAGES_0005 = table(
    "messages",
    column("chat_id", BigInteger),
    column("seq", BigInteger),
    column("text", Text),
    column("created_at", UTCDateTime),
)
START_0005 = datetime(2021, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)  # in the past
# Each chat's messages, in seq order, by their seconds after START_0005. "tie" ends on two
# messages of one time; "inserted late" got its messages in reverse id order; "empty" has none.
PLANS_0005 = {"three": [1, 2, 3], "tie": [5, 7, 7], "inserted late": [8, 9], "empty": []}


def write_as_0005(engine: Engine) -> dict[str, int]:
    """Chats and their messages as the 0005 code wrote them; the chats' ids by title."""
    ids: dict[str, int] = {}
    with engine.begin() as connection:
        for title, seconds in PLANS_0005.items():
            ids[title] = connection.execute(
                insert(CHATS_0005)
                .values(title=title, created_at=START_0005, last_seq=len(seconds))
                .returning(CHATS_0005.c.id)
            ).scalar_one()
            numbered = list(enumerate(seconds, start=1))
            if title == "inserted late":
                numbered.reverse()  # seq, not id, says which message is the newest
            for seq, second in numbered:
                connection.execute(
                    insert(MESSAGES_0005).values(
                        chat_id=ids[title],
                        seq=seq,
                        text=f"{title} {seq}",
                        created_at=START_0005 + timedelta(seconds=second),
                    )
                )
    return ids


def last_message_times(engine: Engine) -> dict[int, datetime | None]:
    statement = text("SELECT id, last_message_at FROM chats").columns(last_message_at=UTCDateTime)
    with engine.connect() as connection:
        return {row.id: row.last_message_at for row in connection.execute(statement)}


def test_0006_puts_each_chat_s_newest_message_time_on_its_row(
    empty_url: str, app_container: Container
) -> None:
    migrations.upgrade(empty_url, "0005")
    engine = app_container.write_engine()
    ids = write_as_0005(engine)

    migrations.upgrade(empty_url)

    assert migrations.is_at_head(engine)
    assert last_message_times(engine) == {
        ids[title]: START_0005 + timedelta(seconds=seconds[-1]) if seconds else None
        for title, seconds in PLANS_0005.items()
    }
    # Posts carry on from there: never before a chat's newest message, even on a clock
    # behind it; a chat without messages takes the clock as it is.
    behind = StepClock(START_0005, step=timedelta(0))
    with app_container.clock.override(providers.Object(behind)):
        post = app_container.post_message()
        for title, seconds in PLANS_0005.items():
            posted = post(PostMessage(chat_id=ids[title], text="after 0006", principal=LOCAL))
            expected = START_0005 + timedelta(seconds=seconds[-1]) if seconds else START_0005
            assert (posted.seq, posted.created_at) == (len(seconds) + 1, expected)
            assert last_message_times(engine)[ids[title]] == expected


def test_0006_downgrades_and_upgrades_again(empty_url: str, app_container: Container) -> None:
    migrations.upgrade(empty_url, "0005")
    engine = app_container.write_engine()
    write_as_0005(engine)
    chats_0005 = rows(engine, "SELECT * FROM chats ORDER BY id")
    messages_0005 = rows(engine, MESSAGES_0004)
    migrations.upgrade(empty_url)
    times = last_message_times(engine)

    migrations.downgrade(empty_url, "0005")

    assert not migrations.is_at_head(engine)
    assert "last_message_at" not in column_names(engine, "chats")
    assert rows(engine, "SELECT * FROM chats ORDER BY id") == chats_0005
    assert rows(engine, MESSAGES_0004) == messages_0005
    # SQLite copied the table: its constraints and its never reused ids came along.
    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_chat(connection, "")
    with engine.begin() as connection:
        doomed = insert_chat(connection, "doomed")
        connection.execute(text("DELETE FROM chats WHERE id = :id"), {"id": doomed})
        later = insert_chat(connection, "after the downgrade")
    assert later > doomed

    migrations.upgrade(empty_url)

    assert schema_diff(engine) == []
    assert last_message_times(engine) == times | {later: None}
    assert rows(engine, MESSAGES_0004) == messages_0005
