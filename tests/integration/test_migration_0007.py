"""Migration 0007 (identity and access) on a database written before it: every message keeps
its place with no author, every chat has no members (so in AUTH_MODE=required only services
see it until some are added), and the downgrade gives back 0006's schema with the data."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import providers
from sqlalchemy import Engine, inspect, text

from commands.put_member import PutMember
from domain.errors import ChatNotFound
from domain.principals import LOCAL, user
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.rebuild import rebuild_read_models
from infrastructure.settings import Settings
from queries.get_chat import GetChat
from queries.list_chats import ListChats
from tests.conftest import EmptyDatabases
from tests.integration.helpers import chat_views_snapshot

AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
MESSAGES = "SELECT id, chat_id, seq, text, created_at FROM messages ORDER BY id"


@pytest.fixture
def container(backend: str, databases: EmptyDatabases) -> Iterator[Container]:
    """A container over a new database migrated up to 0006, with two chats written there."""
    url = databases.new(backend)
    migrations.upgrade(url, "0006")
    container = Container()
    container.settings.override(providers.Object(Settings(database_url=url)))
    with container.write_engine().begin() as connection:
        for chat_id, title, count in ((1, "busy", 3), (2, "empty", 0)):
            connection.execute(
                text(
                    "INSERT INTO chats (id, title, created_at, last_seq) "
                    "VALUES (:id, :title, :at, :count)"
                ),
                {"id": chat_id, "title": title, "at": AT, "count": count},
            )
            connection.execute(
                text(
                    "INSERT INTO chat_views (chat_id, title, created_at, message_count, "
                    "last_message_at, last_activity_at, last_message_preview, last_seq) "
                    "VALUES (:id, :title, :at, :count, :last, :at, :preview, :count)"
                ),
                {
                    "id": chat_id,
                    "title": title,
                    "at": AT,
                    "count": count,
                    "last": AT if count else None,
                    "preview": f"m{count}" if count else None,
                },
            )
            for seq in range(1, count + 1):
                connection.execute(
                    text(
                        "INSERT INTO messages (chat_id, seq, text, created_at) "
                        "VALUES (:chat, :seq, :text, :at)"
                    ),
                    {"chat": chat_id, "seq": seq, "text": f"m{seq}", "at": AT},
                )
    yield container
    container.shutdown_resources()


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql)).all()]


def test_old_messages_have_no_author_and_old_chats_no_members(container: Container) -> None:
    engine = container.write_engine()
    url = container.settings().database_url
    before = rows(engine, MESSAGES)
    views_before = chat_views_snapshot(engine)

    migrations.upgrade(url)

    assert migrations.is_at_head(engine)
    assert rows(engine, MESSAGES) == before
    assert rows(engine, "SELECT author FROM messages") == [(None,)] * 3
    assert [row[:-1] for row in chat_views_snapshot(engine)] == views_before
    assert rows(engine, "SELECT * FROM chat_members") == []
    shown = container.get_chat()(GetChat(1, principal=LOCAL))
    assert [(m.seq, m.author) for m in shown.messages] == [(1, None), (2, None), (3, None)]
    # To a user, a chat without members does not exist; a service sees it.
    ann = user("ann")
    with pytest.raises(ChatNotFound):
        container.get_chat()(GetChat(1, principal=ann))
    assert container.list_chats()(ListChats(principal=ann)).chats == ()
    assert len(container.list_chats()(ListChats(principal=LOCAL)).chats) == 2
    # Once a service adds them, members see it, at its place in their list.
    container.put_member()(PutMember(1, "ann", "owner", principal=LOCAL))
    assert container.get_chat()(GetChat(1, principal=ann)).message_count == 3
    assert [chat.id for chat in container.list_chats()(ListChats(principal=ann)).chats] == [1]
    # A rebuild gives the same member views.
    members = rows(engine, "SELECT chat_id, user_id, role FROM chat_member_views")
    rebuild_read_models(engine)
    assert rows(engine, "SELECT chat_id, user_id, role FROM chat_member_views") == members


def test_0007_downgrades_and_upgrades_again(container: Container) -> None:
    engine = container.write_engine()
    url = container.settings().database_url
    before = rows(engine, MESSAGES)
    migrations.upgrade(url)

    migrations.downgrade(url, "0006")

    assert rows(engine, MESSAGES) == before
    assert "author" not in {c["name"] for c in inspect(engine).get_columns("messages")}
    tables = set(inspect(engine).get_table_names())
    assert not tables & {"chat_members", "api_keys", "stream_tickets", "chat_member_views"}
    assert [c["name"] for c in inspect(engine).get_columns("message_views")] == [
        "id",
        "chat_id",
        "seq",
        "text",
        "created_at",
    ]

    migrations.upgrade(url)

    assert rows(engine, MESSAGES) == before
    assert migrations.is_at_head(engine)
