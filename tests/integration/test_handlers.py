"""The command and query handlers called directly, the way a script uses the container."""

from datetime import UTC, datetime, timedelta

import pytest
from dependency_injector import providers

from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage
from domain.errors import ChatNotFound, InvalidInput
from domain.events import ChatCreated, MessagePosted
from domain.principals import LOCAL
from domain.rules import DEFAULT_LIMIT, MAX_ID, MAX_LIMIT, TEXT_MAX_LENGTH, TITLE_MAX_LENGTH
from infrastructure.container import Container
from queries.dtos import MessageDTO
from queries.get_chat import ChatDetailDTO, GetChat
from tests.integration.helpers import assert_aware_utc, assert_non_decreasing, stored_messages
from tests.support.clocks import StepClock
from tests.support.database import count_rows


def create(container: Container, title: str = "A chat") -> ChatCreated:
    event = container.create_chat()(CreateChat(title=title, principal=LOCAL))
    assert isinstance(event, ChatCreated)
    return event


def post(container: Container, chat_id: int, text: str) -> MessagePosted:
    event = container.post_message()(PostMessage(chat_id=chat_id, text=text, principal=LOCAL))
    assert isinstance(event, MessagePosted)
    return event


def get(container: Container, chat_id: int, limit: int = DEFAULT_LIMIT) -> ChatDetailDTO:
    detail = container.get_chat()(GetChat(chat_id=chat_id, limit=limit, principal=LOCAL))
    assert isinstance(detail, ChatDetailDTO)
    return detail


def assert_nothing_stored(container: Container) -> None:
    engine = container.write_engine()
    for table in ("chats", "messages", "chat_views"):
        assert count_rows(engine, table) == 0, f"{table} is not empty"


# --- CreateChat ----------------------------------------------------------------------------


def test_create_chat_returns_the_created_chat_with_a_trimmed_title(container: Container) -> None:
    before = datetime.now(UTC)
    created = create(container, "  \tWeekend plans \n")
    after = datetime.now(UTC)

    assert created.title == "Weekend plans"
    assert isinstance(created.chat_id, int)
    assert created.chat_id >= 1
    assert_aware_utc(created.created_at)
    assert before <= created.created_at <= after

    detail = get(container, created.chat_id)
    assert detail == ChatDetailDTO(
        id=created.chat_id,
        title="Weekend plans",
        created_at=created.created_at,
        message_count=0,
        last_message_at=None,
        messages=(),
        next_before=None,
    )
    assert_aware_utc(detail.created_at)


def test_created_chats_get_distinct_increasing_ids(container: Container) -> None:
    ids = [create(container, f"chat {n}").chat_id for n in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "title",
    [
        "x",
        "a" * TITLE_MAX_LENGTH,
        "  " + "a" * TITLE_MAX_LENGTH + "\n",
        "😀" * TITLE_MAX_LENGTH,
        "Ünïcödé — 中文",
    ],
)
def test_create_chat_accepts_titles_up_to_the_limit(container: Container, title: str) -> None:
    created = create(container, title)
    assert created.title == title.strip()
    assert get(container, created.chat_id).title == title.strip()


@pytest.mark.parametrize(
    "title",
    ["", "   ", "\t\n\u3000", "a" * (TITLE_MAX_LENGTH + 1), " " + "😀" * 201 + " ", "a\x00b"],
)
def test_create_chat_rejects_invalid_titles_and_writes_nothing(
    container: Container, title: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        container.create_chat()(CreateChat(title=title, principal=LOCAL))
    assert caught.value.field == "title"
    assert_nothing_stored(container)


# --- PostMessage ---------------------------------------------------------------------------


def test_post_message_returns_the_stored_message_exactly_as_sent(container: Container) -> None:
    chat = create(container)
    before = datetime.now(UTC)
    posted = post(container, chat.chat_id, "  hello, world \n")
    after = datetime.now(UTC)

    assert posted.chat_id == chat.chat_id
    assert posted.seq == 1
    assert posted.text == "  hello, world \n"
    assert isinstance(posted.message_id, int)
    assert_aware_utc(posted.created_at)
    assert before <= posted.created_at <= after

    detail = get(container, chat.chat_id)
    assert detail.messages == (
        MessageDTO(
            id=posted.message_id,
            chat_id=chat.chat_id,
            seq=1,
            text="  hello, world \n",
            created_at=posted.created_at,
            author=None,
        ),
    )
    assert detail.message_count == 1
    assert detail.last_message_at == posted.created_at
    assert_aware_utc(detail.messages[0].created_at)


@pytest.mark.parametrize("text", ["x", "a" * TEXT_MAX_LENGTH, "😀" * TEXT_MAX_LENGTH, "\n x \n"])
def test_post_message_accepts_texts_up_to_the_limit(container: Container, text: str) -> None:
    chat = create(container)
    assert post(container, chat.chat_id, text).text == text
    assert [m.text for m in get(container, chat.chat_id).messages] == [text]


@pytest.mark.parametrize(
    "text", ["", " ", "\t\n \u3000", "a" * (TEXT_MAX_LENGTH + 1), "😀" * 5001, "a\x00b", "\ud800"]
)
def test_post_message_rejects_invalid_texts_and_writes_nothing(
    container: Container, text: str
) -> None:
    chat = create(container)
    with pytest.raises(InvalidInput) as caught:
        container.post_message()(PostMessage(chat_id=chat.chat_id, text=text, principal=LOCAL))
    assert caught.value.field == "text"

    detail = get(container, chat.chat_id)
    assert detail.messages == ()
    assert detail.message_count == 0
    assert detail.last_message_at is None
    assert count_rows(container.write_engine(), "messages") == 0


def test_invalid_text_to_a_missing_chat_is_invalid_input_not_not_found(
    container: Container,
) -> None:
    with pytest.raises(InvalidInput):
        container.post_message()(PostMessage(chat_id=12345, text="   ", principal=LOCAL))
    assert_nothing_stored(container)


@pytest.mark.parametrize("chat_id", [0, -1, MAX_ID, MAX_ID + 1, 10**30, -(10**30)])
def test_post_message_to_impossible_or_missing_ids_raises_chat_not_found(
    container: Container, chat_id: int
) -> None:
    with pytest.raises(ChatNotFound) as caught:
        container.post_message()(PostMessage(chat_id=chat_id, text="hello", principal=LOCAL))
    assert caught.value.chat_id == chat_id
    assert_nothing_stored(container)


def test_post_message_to_a_missing_chat_writes_nothing(container: Container) -> None:
    chat = create(container)
    post(container, chat.chat_id, "first")
    missing = chat.chat_id + 1000
    with pytest.raises(ChatNotFound) as caught:
        container.post_message()(PostMessage(chat_id=missing, text="lost", principal=LOCAL))
    assert caught.value.chat_id == missing

    engine = container.write_engine()
    assert count_rows(engine, "messages") == 1
    assert count_rows(engine, "chat_views") == 1
    assert get(container, chat.chat_id).message_count == 1


# --- GetChat -------------------------------------------------------------------------------


def test_get_chat_returns_the_last_messages_oldest_first(container: Container) -> None:
    chat = create(container)
    other = create(container, "other")
    posted = []
    for n in range(30):
        posted.append(post(container, chat.chat_id, f"message {n}"))
        post(container, other.chat_id, f"elsewhere {n}")

    last_ten = get(container, chat.chat_id, limit=10)
    assert [m.text for m in last_ten.messages] == [f"message {n}" for n in range(20, 30)]
    assert [m.id for m in last_ten.messages] == [p.message_id for p in posted[20:]]
    assert all(m.chat_id == chat.chat_id for m in last_ten.messages)
    assert last_ten.message_count == 30
    assert last_ten.last_message_at == posted[-1].created_at

    everything = get(container, chat.chat_id, limit=MAX_LIMIT)
    assert [m.text for m in everything.messages] == [f"message {n}" for n in range(30)]
    ids = [m.id for m in everything.messages]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert_non_decreasing([m.created_at for m in everything.messages])
    assert everything.message_count == 30

    assert [m.text for m in get(container, chat.chat_id, limit=1).messages] == ["message 29"]
    default = get(container, chat.chat_id)
    assert [m.text for m in default.messages] == [
        f"message {n}" for n in range(30 - DEFAULT_LIMIT, 30)
    ]


def test_get_chat_returns_at_most_the_limit_of_a_long_chat(container: Container) -> None:
    chat = create(container)
    for n in range(MAX_LIMIT + 5):
        post(container, chat.chat_id, f"m{n}")
    detail = get(container, chat.chat_id, limit=MAX_LIMIT)
    assert len(detail.messages) == MAX_LIMIT
    assert [m.text for m in detail.messages] == [f"m{n}" for n in range(5, MAX_LIMIT + 5)]
    assert detail.message_count == MAX_LIMIT + 5


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 10**6, True, False])
def test_get_chat_rejects_limits_out_of_range(container: Container, limit: int) -> None:
    chat = create(container)
    with pytest.raises(InvalidInput) as caught:
        container.get_chat()(GetChat(chat_id=chat.chat_id, limit=limit, principal=LOCAL))
    assert caught.value.field == "limit"


def test_get_chat_checks_the_limit_before_the_chat(container: Container) -> None:
    with pytest.raises(InvalidInput):
        container.get_chat()(GetChat(chat_id=424242, limit=0, principal=LOCAL))


@pytest.mark.parametrize("chat_id", [0, -1, 1, 424242, MAX_ID, MAX_ID + 1, 10**30])
def test_get_chat_of_a_missing_chat_raises_chat_not_found(
    container: Container, chat_id: int
) -> None:
    with pytest.raises(ChatNotFound) as caught:
        container.get_chat()(GetChat(chat_id=chat_id, principal=LOCAL))
    assert caught.value.chat_id == chat_id


# --- DeleteChat ----------------------------------------------------------------------------


def test_delete_chat_removes_the_chat_and_its_messages_only(container: Container) -> None:
    doomed = create(container, "doomed")
    kept = create(container, "kept")
    for n in range(3):
        post(container, doomed.chat_id, f"doomed {n}")
        post(container, kept.chat_id, f"kept {n}")

    deleted = container.delete_chat()(DeleteChat(chat_id=doomed.chat_id, principal=LOCAL))
    assert deleted.chat_id == doomed.chat_id

    with pytest.raises(ChatNotFound):
        get(container, doomed.chat_id)
    engine = container.write_engine()
    assert count_rows(engine, "chat_views", chat_id=doomed.chat_id) == 0
    # Its messages wait for the purge, a background job, while the chat is gone to all.
    assert count_rows(engine, "messages", chat_id=doomed.chat_id) == 3
    assert count_rows(engine, "jobs", kind="purge_chat", chat_id=doomed.chat_id) == 1

    container.job_runner().run_until_idle()
    assert count_rows(engine, "messages", chat_id=doomed.chat_id) == 0
    assert count_rows(engine, "chats", id=doomed.chat_id) == 0
    assert count_rows(engine, "jobs", kind="purge_chat") == 0

    survivor = get(container, kept.chat_id)
    assert [m.text for m in survivor.messages] == ["kept 0", "kept 1", "kept 2"]
    assert survivor.message_count == 3
    assert count_rows(engine, "messages") == 3


def test_a_deleted_chat_stays_gone(container: Container) -> None:
    chat = create(container)
    container.delete_chat()(DeleteChat(chat_id=chat.chat_id, principal=LOCAL))

    with pytest.raises(ChatNotFound):
        container.delete_chat()(DeleteChat(chat_id=chat.chat_id, principal=LOCAL))
    with pytest.raises(ChatNotFound):
        container.post_message()(
            PostMessage(chat_id=chat.chat_id, text="too late", principal=LOCAL)
        )
    container.job_runner().run_until_idle()  # the purge, a background job
    assert_nothing_stored(container)

    # Ids are not handed out again: a stale reference cannot reach a new chat.
    assert create(container, "new").chat_id != chat.chat_id


@pytest.mark.parametrize("chat_id", [0, -1, 1, 424242, MAX_ID, MAX_ID + 1, 10**30])
def test_delete_of_a_missing_chat_raises_chat_not_found(container: Container, chat_id: int) -> None:
    with pytest.raises(ChatNotFound) as caught:
        container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    assert caught.value.chat_id == chat_id


# --- created_at order ----------------------------------------------------------------------


def test_created_at_never_decreases_when_the_clock_goes_backwards(container: Container) -> None:
    clock = StepClock(datetime.now(UTC) + timedelta(days=365), step=timedelta(seconds=-1))
    chat = create(container)
    other = create(container, "other")
    with container.clock.override(providers.Object(clock)):
        posted = [post(container, chat.chat_id, f"m{n}") for n in range(12)]
        first_elsewhere = post(container, other.chat_id, "elsewhere")
    assert len(clock.readings) == 13
    assert clock.readings == sorted(clock.readings, reverse=True)  # the clock did go back

    for event in posted:
        assert_aware_utc(event.created_at)
    assert_non_decreasing([event.created_at for event in posted])

    detail = get(container, chat.chat_id, limit=MAX_LIMIT)
    assert [m.id for m in detail.messages] == [event.message_id for event in posted]
    assert [m.created_at for m in detail.messages] == [event.created_at for event in posted]
    assert detail.last_message_at == max(event.created_at for event in posted)
    stored = stored_messages(container.write_engine(), chat.chat_id, table="messages")
    assert_non_decreasing([m.created_at for m in stored])

    # The other chat had no earlier message to keep up with: it takes the clock as it is.
    assert first_elsewhere.created_at == clock.readings[-1]

    # Back on the real clock, a year behind the fake one: still never before the last one.
    later = post(container, chat.chat_id, "after the override")
    assert later.created_at == posted[-1].created_at
    assert get(container, chat.chat_id).last_message_at == posted[-1].created_at
