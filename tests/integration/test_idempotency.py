"""Idempotency keys through the handlers, the way a script or a worker retries a command."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dependency_injector import providers

from commands.create_chat import CreateChat, CreateChatResult
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage, PostMessageResult
from domain.errors import ChatNotFound, IdempotencyKeyReused, InvalidInput
from domain.principals import LOCAL
from infrastructure.container import Container
from queries.get_chat import GetChat
from tests.support.clocks import StepClock
from tests.support.database import count_rows
from tests.support.threads import run_in_threads

# The finest step of a stored time, on PostgreSQL and SQLite alike.
ONE_MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def clock(container: Container) -> Iterator[StepClock]:
    """The container's clock, moved by hand; keys and handlers both read it."""
    moved = StepClock(datetime.now(UTC), step=timedelta(0))
    with container.clock.override(providers.Object(moved)):
        yield moved


def create(container: Container, title: str, key: str | None) -> CreateChatResult:
    return container.create_chat()(CreateChat(title=title, idempotency_key=key, principal=LOCAL))


def post(container: Container, chat_id: int, text: str, key: str | None) -> PostMessageResult:
    return container.post_message()(
        PostMessage(chat_id=chat_id, text=text, idempotency_key=key, principal=LOCAL)
    )


def count(container: Container, table: str) -> int:
    return count_rows(container.write_engine(), table)


def test_a_repeated_create_returns_the_first_chat(container: Container) -> None:
    first = create(container, "Standup", "key-1")
    again = create(container, "Standup", "key-1")
    assert again == first
    assert (first.replayed, again.replayed) == (False, True)
    assert count(container, "chats") == 1
    assert count(container, "chat_views") == 1


def test_the_same_title_before_trimming_is_the_same_request(container: Container) -> None:
    first = create(container, "Standup", "key-1")
    assert create(container, "  Standup ", "key-1") == first
    assert count(container, "chats") == 1


def test_a_key_reused_with_another_title_is_refused_and_changes_nothing(
    container: Container,
) -> None:
    create(container, "Standup", "key-1")
    with pytest.raises(IdempotencyKeyReused):
        create(container, "Retro", "key-1")
    assert count(container, "chats") == 1


def test_without_a_key_every_create_creates(container: Container) -> None:
    created = [create(container, "Standup", None) for _ in range(2)]
    assert [chat.replayed for chat in created] == [False, False]
    assert count(container, "chats") == 2


def test_different_keys_create_different_chats(container: Container) -> None:
    assert create(container, "Standup", "a") != create(container, "Standup", "b")
    assert count(container, "chats") == 2


def test_a_repeated_post_returns_the_first_message(container: Container) -> None:
    chat = create(container, "Standup", None)
    first = post(container, chat.chat_id, "hello", "m-1")
    again = post(container, chat.chat_id, "hello", "m-1")
    assert again == first
    assert (first.replayed, again.replayed) == (False, True)
    detail = container.get_chat()(GetChat(chat_id=chat.chat_id, limit=10, principal=LOCAL))
    assert detail.message_count == 1
    assert [m.id for m in detail.messages] == [first.message_id]


def test_a_post_key_reused_with_another_text_is_refused(container: Container) -> None:
    chat = create(container, "Standup", None)
    post(container, chat.chat_id, "hello", "m-1")
    with pytest.raises(IdempotencyKeyReused):
        post(container, chat.chat_id, "hello again", "m-1")
    assert count(container, "messages") == 1


def test_keys_are_scoped_per_operation_and_per_chat(container: Container) -> None:
    one = create(container, "one", "shared")
    two = create(container, "two", None)
    # The same key on another operation, and on another chat, is another key.
    in_one = post(container, one.chat_id, "hello", "shared")
    in_two = post(container, two.chat_id, "hello", "shared")
    assert in_one.message_id != in_two.message_id
    assert count(container, "messages") == 2


def test_each_key_replays_its_own_result_whatever_else_is_keyed(container: Container) -> None:
    """A result is stored under one key in one scope: other keys in the scope, and the same
    key in other scopes, neither overwrite it nor are replayed in its place."""
    one = create(container, "one", "shared")
    two = create(container, "two", "other")  # another key, the same scope
    in_one = post(container, one.chat_id, "hello", "shared")  # the same key, other scopes
    in_two = post(container, two.chat_id, "hello", "shared")

    replays: list[CreateChatResult | PostMessageResult] = [
        create(container, "one", "shared"),
        create(container, "two", "other"),
        post(container, one.chat_id, "hello", "shared"),
        post(container, two.chat_id, "hello", "shared"),
    ]

    assert replays == [one, two, in_one, in_two]
    assert all(replay.replayed for replay in replays)
    assert (count(container, "chats"), count(container, "messages")) == (2, 2)


def test_a_failed_command_does_not_use_up_its_key(container: Container) -> None:
    with pytest.raises(ChatNotFound):
        post(container, 10**12, "hello", "m-1")
    with pytest.raises(InvalidInput):
        create(container, "   ", "c-1")
    assert count(container, "idempotency_keys") == 0
    chat = create(container, "Standup", "c-1")
    assert post(container, chat.chat_id, "hello", "m-1").chat_id == chat.chat_id


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\t", "é"])
def test_a_malformed_key_is_invalid_input(container: Container, key: str) -> None:
    with pytest.raises(InvalidInput):
        create(container, "Standup", key)
    assert count(container, "chats") == 0


def test_deleting_a_chat_forgets_its_message_keys(container: Container) -> None:
    chat = create(container, "Standup", None)
    post(container, chat.chat_id, "hello", "m-1")
    container.delete_chat()(DeleteChat(chat_id=chat.chat_id, principal=LOCAL))
    # A retry finds no chat, before its key is even looked at; the purge takes the keys.
    with pytest.raises(ChatNotFound):
        post(container, chat.chat_id, "hello", "m-1")
    container.job_runner().run_until_idle()
    assert count(container, "idempotency_keys") == 0


def test_an_expired_key_is_forgotten(container: Container, clock: StepClock) -> None:
    ttl = container.settings().idempotency_ttl
    first = create(container, "Standup", "key-1")
    clock.now += timedelta(seconds=ttl - 1)
    assert create(container, "Standup", "key-1") == first
    clock.now += timedelta(seconds=2)
    assert create(container, "Standup", "key-1") != first
    assert count(container, "chats") == 2


def test_a_key_is_kept_for_the_whole_ttl_and_not_a_microsecond_more(
    container: Container, clock: StepClock
) -> None:
    """Keys are kept for IDEMPOTENCY_TTL seconds (docs/api.md), the last instant included:
    at exactly that age a retry is still a replay."""
    ttl = timedelta(seconds=container.settings().idempotency_ttl)
    first = create(container, "Standup", "key-1")

    clock.now += ttl
    at_the_ttl = create(container, "Standup", "key-1")
    clock.now += ONE_MICROSECOND
    past_it = create(container, "Standup", "key-1")

    assert (at_the_ttl, at_the_ttl.replayed) == (first, True)
    assert past_it != first
    assert not past_it.replayed
    assert count(container, "chats") == 2


def test_purge_keeps_a_key_of_exactly_the_ttl(container: Container, clock: StepClock) -> None:
    """The purge and a retry draw the line at the same instant."""
    ttl = timedelta(seconds=container.settings().idempotency_ttl)
    first = create(container, "Standup", "key-1")
    clock.now += ttl

    assert container.purge_idempotency_keys() == 0
    assert create(container, "Standup", "key-1").replayed

    clock.now += ONE_MICROSECOND
    assert container.purge_idempotency_keys() == 1
    assert count(container, "idempotency_keys") == 0
    assert create(container, "Standup", "key-1") != first


def test_purge_deletes_only_expired_keys(container: Container, clock: StepClock) -> None:
    ttl = container.settings().idempotency_ttl
    create(container, "old", "old")
    clock.now += timedelta(seconds=ttl / 2)
    create(container, "new", "new")
    clock.now += timedelta(seconds=ttl / 2 + 1)

    purged = container.purge_idempotency_keys()

    assert purged == 1
    assert count(container, "idempotency_keys") == 1
    assert count(container, "chats") == 2  # purging keys never touches what they created


def test_concurrent_creates_with_one_key_create_one_chat(container: Container) -> None:
    results: list[CreateChatResult] = []

    def worker() -> None:
        results.append(create(container, "Standup", "race"))

    run_in_threads([worker] * 12)
    assert len(results) == 12
    assert len(set(results)) == 1
    assert [chat.replayed for chat in results].count(False) == 1
    assert count(container, "chats") == 1
    assert count(container, "chat_views") == 1


def test_concurrent_posts_with_one_key_post_one_message(container: Container) -> None:
    chat = create(container, "Standup", None)
    results: list[PostMessageResult] = []

    def worker() -> None:
        results.append(post(container, chat.chat_id, "hello", "race"))

    run_in_threads([worker] * 12)
    assert len(set(results)) == 1
    detail = container.get_chat()(GetChat(chat_id=chat.chat_id, limit=10, principal=LOCAL))
    assert detail.message_count == 1
    assert count(container, "messages") == 1
