"""A request whose deadline passes while its statement runs cancels the statement: the 503
says so, the handler's thread and connection are free at once, and the command it was
running keeps nothing, even once what held the statement up lets go.

Start-up refuses a DB_STATEMENT_TIMEOUT above REQUEST_TIMEOUT, which is its default.
"""

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from anyio import to_thread
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from api.admission import STATEMENT_CANCELLED, Admission, Busy
from cli.main import main
from infrastructure import database
from infrastructure.caller import CallerGone
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.reliability.load import Exchange, create_chat, exchange
from tests.support.database import OTHER_SESSIONS, count_rows, held, inspector
from tests.support.servers import container_for, new_client, served

REQUEST_TIMEOUT = 2.0
DEADLINE = 0.5  # of a run admitted directly
SLEEP_SECONDS = 3.0  # a statement that would run on well past it
FAR = 60.0
# A request is answered within its deadline plus this: the server shares this process with
# the test's clients, on a machine that may be busy.
MARGIN = 0.75
RETRY_AFTER = 1
SETTLE_SECONDS = 5.0
WAITING_FOR_A_LOCK = f"SELECT count(*) {OTHER_SESSIONS} AND wait_event_type = 'Lock'"


def container_of(database_url: str, **settings: Any) -> Container:
    """One handler thread, which a request finds free only if the one before let it go."""
    return container_for(
        database_url,
        worker_threads=1,
        thread_wait_timeout=0.5,
        request_timeout=REQUEST_TIMEOUT,
        lock_timeout=30.0,  # the deadline, not a lock timeout, ends the waits here
        retry_after=RETRY_AFTER,
        access_log=False,
        **settings,
    )


def assert_cancelled(answer: Exchange) -> None:
    assert answer.status == 503, answer.describe()
    assert answer.body == {"detail": STATEMENT_CANCELLED}, answer.describe()
    assert answer.retry_after == str(RETRY_AFTER), answer.describe()
    assert REQUEST_TIMEOUT <= answer.duration <= REQUEST_TIMEOUT + MARGIN, answer.describe()


def assert_connections_returned(container: Container) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    engines = (container.write_engine(), container.read_engine())
    while any(engine.pool.checkedout() for engine in engines):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, [e.pool.status() for e in engines]
        time.sleep(0.05)


def no_errors_logged(records: list[logging.LogRecord]) -> None:
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert not errors, errors


def test_a_statement_past_the_deadline_is_cancelled_and_frees_its_thread_at_once(
    own_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The post's last statement (its chat view's update) starts late, held up first by the
    chat's row lock, then waits for its view's row: its own statement timeout would end it
    well after the request's deadline, so only the cancel frees the thread in time."""
    container = container_of(own_database)
    with served(container) as base_url, new_client(base_url) as http:
        chat, other = create_chat(base_url, "cancelled"), create_chat(base_url, "other")
        with held(
            own_database, "SELECT 1 FROM chat_views WHERE chat_id = :id FOR UPDATE", id=chat
        ) as view_lock:
            answers: list[Exchange] = []
            with held(own_database, "SELECT 1 FROM chats WHERE id = :id FOR UPDATE", id=chat):
                post = threading.Thread(
                    target=lambda: answers.append(
                        exchange(http, "POST", f"/chats/{chat}/messages/", chat, {"text": "x"})
                    )
                )
                post.start()
                time.sleep(REQUEST_TIMEOUT / 2)
            # The post takes the chat's seq now, and waits for its view's row.
            released = time.monotonic()
            post.join(timeout=REQUEST_TIMEOUT + 5)
            [late] = answers
            assert_cancelled(late)

            # The only handler thread serves the next request at once, the view's row still
            # locked; no statement of the service waits for it any more.
            read = exchange(http, "GET", f"/chats/{other}", other)
            assert read.status == 200, read.describe()
            with inspector(own_database) as engine, engine.connect() as connection:
                waiting = connection.execute(text(WAITING_FOR_A_LOCK)).scalar_one()
            # Before the statement's own timeout could have ended it: the cancel did.
            assert time.monotonic() < released + REQUEST_TIMEOUT, "too slow to tell"
            assert waiting == 0
            view_lock.rollback()

        # Nothing of the post was kept, now that nothing holds it up.
        assert_connections_returned(container)
        with inspector(own_database) as engine:
            assert count_rows(engine, "messages", chat_id=chat) == 0
            assert count_rows(engine, "chat_views", chat_id=chat, message_count=0) == 1
        posted = http.post(f"/chats/{chat}/messages/", json={"text": "next"})
        assert posted.status_code == 201, posted.text
        assert posted.json()["seq"] == 1  # the cancelled post used no seq up
    no_errors_logged(caplog.records)


def test_a_read_past_the_deadline_is_cancelled_and_its_connection_serves_the_next(
    own_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One pooled connection per engine: the readiness probe that follows the cancelled read
    is served only if the read's thread and connection both came back, usable."""
    container = container_of(own_database, db_pool_size=1, db_max_overflow=0)
    with served(container) as base_url, new_client(base_url) as http:
        chat = create_chat(base_url, "read")
        with held(own_database, "LOCK TABLE chat_views IN ACCESS EXCLUSIVE MODE"):
            stuck = exchange(http, "GET", f"/chats/{chat}", chat)
            assert_cancelled(stuck)
            ready = exchange(http, "GET", "/health/ready", chat)
            assert ready.status == 200, ready.describe()
        shown = exchange(http, "GET", f"/chats/{chat}", chat)
        assert shown.status == 200, shown.describe()
        assert_connections_returned(container)
    no_errors_logged(caplog.records)


def test_a_run_past_its_deadline_is_cancelled_and_gets_no_other_connection(
    own_database: str,
) -> None:
    """Admission over a real engine: a statement far from its own timeout ends at the
    request's deadline, and the handler, carrying on, is refused another connection."""
    settings = Settings(database_url=own_database, request_timeout=SLEEP_SECONDS * 2)
    engines = database.read_engine(settings)
    engine = next(engines)
    outcome: list[str] = []

    def handler(_: None) -> None:
        try:
            with engine.connect() as connection:
                connection.execute(text(f"SELECT pg_sleep({SLEEP_SECONDS})"))
        except OperationalError as exc:
            outcome.append(type(exc.orig).__name__)
        try:
            engine.connect().close()
        except CallerGone:
            outcome.append("refused")

    async def scenario() -> None:
        admission = Admission(thread_wait=FAR, request_timeout=DEADLINE, writes_per_chat=1)
        began = time.monotonic()
        with pytest.raises(Busy, match=STATEMENT_CANCELLED):
            await admission.run(handler, None)
        threads = to_thread.current_default_thread_limiter()
        while threads.borrowed_tokens:  # given back when the handler returns
            await asyncio.sleep(0.01)
        assert time.monotonic() - began < DEADLINE + MARGIN

    try:
        asyncio.run(scenario())
        assert outcome == ["QueryCanceled", "refused"]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        with engine.connect() as connection:  # the pool's connections still serve
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        next(engines, None)  # disposes of the engine


# --- DB_STATEMENT_TIMEOUT: at most REQUEST_TIMEOUT ---------------------------------------------


def test_the_statement_timeout_is_the_request_timeout_unless_set_lower(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DB_STATEMENT_TIMEOUT", raising=False)
    monkeypatch.delenv("REQUEST_TIMEOUT", raising=False)
    assert Settings().db_statement_timeout == Settings().request_timeout == 10.0
    monkeypatch.setenv("REQUEST_TIMEOUT", "3")
    assert Settings().db_statement_timeout == 3.0
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT", "3")
    assert Settings().db_statement_timeout == 3.0
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT", "0.5")
    assert Settings().db_statement_timeout == 0.5


@pytest.mark.parametrize(
    ("request_timeout", "statement_timeout"), [(None, "30"), ("3", "3.5"), ("1", "10")]
)
def test_a_statement_timeout_above_the_request_timeout_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request_timeout: str | None,
    statement_timeout: str,
) -> None:
    if request_timeout is None:
        monkeypatch.delenv("REQUEST_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("REQUEST_TIMEOUT", request_timeout)
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT", statement_timeout)
    with pytest.raises(ValidationError, match="must not be above REQUEST_TIMEOUT"):
        Settings()
    assert main(["serve"]) == 2
    told = capsys.readouterr().err
    assert "invalid configuration" in told, told
    assert f"DB_STATEMENT_TIMEOUT ({float(statement_timeout):g}) must not be above" in told
    assert f"REQUEST_TIMEOUT ({float(request_timeout or 10):g})" in told, told
