"""The hint channel of live delivery: "chat N has news", within a process and across processes.

Hints carry no data; a stream woken by one re-reads the database. What matters is that a hint
wakes the right streams, from any thread and from any process, that writers' hints are batched
after commit, and that the channel heals by itself when its connections are cut.

Two processes are simulated by two Publishers, each with its own hint channel (one thread, one
connection). Scenarios run on the standard asyncio loop and on uvloop (what uvicorn runs).
"""

import asyncio
import select
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import pytest
import uvloop

from domain.rules import MAX_ID
from infrastructure.database import PgConnection, connect, connect_params
from infrastructure.hints import POLL_INTERVAL, HintChannel, LocalHints, Publisher
from infrastructure.hints.channel import (
    APPLICATION_NAME,
    CHANNEL,
    SENDING_ONLY_NAME,
    decode,
    encode,
)
from tests.support.hint_database import terminate
from tests.support.hint_waiters import FanOut, subscribe

# A scenario that takes longer has hung: it fails instead of stalling the suite.
SCENARIO_TIMEOUT = 30.0
# How long a subscription that should not be woken is watched.
QUIET_SECONDS = 0.2

Scenario = Callable[[], Awaitable[None]]
Runner = Callable[[Scenario], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a scenario on a new event loop of the kind the test is parametrized with."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def run_scenario(scenario: Scenario) -> None:
        async def bounded() -> None:
            await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT)

        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(bounded())

    return run_scenario


class Notifications:
    """A raw LISTEN connection on the hint channel, counting what arrives."""

    def __init__(self, database_url: str) -> None:
        self.connection = connect(database_url, 5, "test listener")
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self.hints: list[set[int]] = []

    def chat_ids(self) -> set[int]:
        return {chat_id for hint in self.hints for chat_id in hint}

    def receive_until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only these hints arrived: {self.hints}"
            select.select([self.connection], [], [], remaining)
            self.connection.poll()
            for notification in self.connection.notifies:
                hint = decode(notification.payload)
                assert hint, notification.payload
                self.hints.append(hint)
            self.connection.notifies.clear()

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def notifications(postgres_url: str) -> Iterator[Notifications]:
    listening = Notifications(postgres_url)
    yield listening
    listening.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.005)


def in_thread(work: Callable[[], None]) -> None:
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(SCENARIO_TIMEOUT)


async def started(*publishers: Publisher) -> None:
    """Start the publishers and wait until each listens."""
    for publisher in publishers:
        await publisher.start()
    await until(lambda: all(publisher.listening for publisher in publishers))


# In-process wake-ups


def test_a_hint_from_another_thread_wakes_only_that_chats_subscribers(run: Runner) -> None:
    async def scenario() -> None:
        hints = LocalHints()
        hints.loop = asyncio.get_running_loop()
        with (
            subscribe(hints, 1) as first,
            subscribe(hints, 1) as second,
            subscribe(hints, 2) as other,
        ):
            await asyncio.to_thread(hints.publish, [1, 3])
            assert await first.wait(5)
            assert await second.wait(5)
            assert not await other.wait(QUIET_SECONDS)

    run(scenario)


def test_a_hint_between_two_waits_is_kept(run: Runner) -> None:
    async def scenario() -> None:
        hints = LocalHints()
        hints.loop = asyncio.get_running_loop()
        with subscribe(hints, 7) as subscription:
            in_thread(lambda: hints.publish([7]))  # while nobody waits
            assert await subscription.wait(5)
            # One wake-up for any number of hints before the wait: the stream reads once.
            in_thread(lambda: hints.publish([7]))
            in_thread(lambda: hints.publish([7]))
            assert await subscription.wait(5)
            assert not await subscription.wait(QUIET_SECONDS)

    run(scenario)


def test_wake_all_wakes_every_subscription(run: Runner) -> None:
    async def scenario() -> None:
        hints = LocalHints()
        hints.loop = asyncio.get_running_loop()
        with subscribe(hints, 1) as first, subscribe(hints, 2) as second:
            in_thread(hints.wake_all)
            assert await first.wait(5)
            assert await second.wait(5)

    run(scenario)


def test_no_state_is_kept_for_a_chat_nobody_follows(run: Runner) -> None:
    async def scenario() -> None:
        hints = LocalHints()
        hints.loop = asyncio.get_running_loop()
        subscriptions = [subscribe(hints, chat_id % 100) for chat_id in range(1_000)]
        assert hints.chats == 100
        for subscription in subscriptions:
            subscription.close()
        subscriptions[0].close()  # a second close changes nothing
        hints.publish(range(1_000))  # hints for chats nobody follows leave nothing behind
        await asyncio.sleep(0)
        assert hints.chats == 0

    run(scenario)


def test_without_a_loop_publishing_wakes_nobody_and_keeps_nothing() -> None:
    hints = LocalHints()
    hints.publish(range(1_000))
    hints.wake_all()
    with pytest.raises(RuntimeError):
        hints.follow(1, FanOut(hints, 1))


def test_on_sqlite_hints_stay_in_the_process_and_streams_poll(run: Runner, tmp_path: Any) -> None:
    publisher = Publisher(f"sqlite:///{tmp_path}/hints.db")
    assert publisher.channel is None

    async def scenario() -> None:
        await publisher.start()
        with subscribe(publisher.hints, 5) as subscription:
            await asyncio.to_thread(publisher.publish, [5])
            assert await subscription.wait(5)
        assert not publisher.listening
        assert publisher.wait_timeout(15.0) == POLL_INTERVAL
        await publisher.stop()

    run(scenario)


# What a hint looks like on the wire: the chat ids, "7,12,40"


def test_a_long_list_of_chats_is_split_under_the_payload_limit() -> None:
    chat_ids = set(range(MAX_ID - 3_000, MAX_ID + 1))  # the longest ids there are
    payloads = encode(chat_ids)
    assert len(payloads) > 1
    assert all(len(payload.encode()) < 7_000 for payload in payloads)
    assert {chat_id for payload in payloads for chat_id in decode(payload)} == chat_ids
    assert decode("not a hint") == set()


def test_connection_parameters_come_from_the_database_url() -> None:
    url = "postgresql+psycopg2://chat%40api:p%3Ass@db.example:6543/chat?sslmode=require"
    assert connect_params(url) == {
        "user": "chat@api",
        "password": "p:ss",
        "host": "db.example",
        "port": 6543,
        "dbname": "chat",
        "sslmode": "require",
    }
    socket_url = "postgresql+psycopg2://chat@/chat?host=/run/postgresql"
    assert connect_params(socket_url) == {
        "user": "chat",
        "dbname": "chat",
        "host": "/run/postgresql",
    }


# Sending: after commit, batched, from the channel's thread


class Received:
    """A channel's receiver that records what it is handed, from the channel's thread."""

    def __init__(self) -> None:
        self.chat_ids: list[set[int]] = []
        self.wakes = 0

    def publish(self, chat_ids: Iterable[int]) -> None:
        self.chat_ids.append(set(chat_ids))

    def wake_all(self) -> None:
        self.wakes += 1


def sending_channel(postgres_url: str, batch_delay: float = 0.002) -> HintChannel:
    return HintChannel(postgres_url, Received(), connect_timeout=5, batch_delay=batch_delay)


def application_names(admin: PgConnection) -> list[str]:
    """The hint channels' connections open on the database, by name. A connection closed
    lingers a moment, until its server process has exited: see `no_channels`."""
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'chatapi hints%'"
        )
        return sorted(name for (name,) in cursor.fetchall())


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)


@pytest.fixture
def no_channels(admin: PgConnection) -> None:
    """The earlier tests' channels are gone from the server: only the test's own are seen."""
    eventually(lambda: application_names(admin) == [])


def test_many_hints_go_out_as_few_notifications(
    postgres_url: str, notifications: Notifications
) -> None:
    channel = sending_channel(postgres_url, batch_delay=0.02)
    senders = 4
    per_sender = 250

    def send_many(first: int) -> None:
        for chat_id in range(first, first + per_sender):
            channel.send([chat_id])

    threads = [threading.Thread(target=send_many, args=(n * per_sender,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SCENARIO_TIMEOUT)
    channel.close()

    everything = set(range(senders * per_sender))
    notifications.receive_until(lambda: notifications.chat_ids() == everything)
    assert len(notifications.hints) <= 10, f"{len(notifications.hints)} NOTIFYs for 1,000 hints"


def test_hints_that_trickle_in_wait_for_the_batch(
    postgres_url: str, notifications: Notifications
) -> None:
    batch_delay = 0.05
    channel = sending_channel(postgres_url, batch_delay=batch_delay)
    began = time.monotonic()
    for chat_id in range(100):
        channel.send([chat_id])
        time.sleep(0.001)
    batches = (time.monotonic() - began) / batch_delay
    channel.close()

    notifications.receive_until(lambda: notifications.chat_ids() == set(range(100)))
    assert len(notifications.hints) <= batches + 2, f"{len(notifications.hints)} NOTIFYs"


def test_a_hint_after_a_quiet_spell_goes_at_once_the_next_with_the_batch(
    postgres_url: str, notifications: Notifications
) -> None:
    """At most one NOTIFY per batch_delay, the first at once: a lone post's streams in other
    processes do not wait for a batch."""
    channel = sending_channel(postgres_url, batch_delay=30.0)
    sent = time.monotonic()
    channel.send([7])
    notifications.receive_until(lambda: notifications.chat_ids() == {7}, timeout=5.0)
    assert time.monotonic() - sent < 5.0
    channel.send([8])
    channel.send([9])
    with pytest.raises(AssertionError):  # within the 30 s: held for the batch
        notifications.receive_until(lambda: 8 in notifications.chat_ids(), timeout=1.0)
    channel.close()  # sends what is queued
    notifications.receive_until(lambda: notifications.chat_ids() == {7, 8, 9})
    assert notifications.hints == [{7}, {8, 9}]


def test_a_list_longer_than_one_payload_arrives_whole(
    postgres_url: str, notifications: Notifications
) -> None:
    channel = sending_channel(postgres_url)
    chat_ids = set(range(10**12, 10**12 + 3_000))
    channel.send(chat_ids)
    channel.close()
    notifications.receive_until(lambda: notifications.chat_ids() == chat_ids)


def test_close_sends_what_is_queued_and_ends_the_thread(
    postgres_url: str, notifications: Notifications, admin: PgConnection, no_channels: None
) -> None:
    # A CLI command: no event loop, posts once, exits. Its hint must still go out.
    publisher = Publisher(postgres_url, batch_delay=30.0)
    publisher.publish([42])
    eventually(lambda: application_names(admin) == [SENDING_ONLY_NAME])
    started_closing = time.monotonic()
    publisher.close()
    assert time.monotonic() - started_closing < 2.0
    notifications.receive_until(lambda: 42 in notifications.chat_ids())
    assert publisher.channel is not None
    assert publisher.channel.backend_pid is None  # its thread closed the connection and ended


def test_a_process_that_only_writes_connects_late_and_never_listens(
    postgres_url: str, admin: PgConnection, no_channels: None
) -> None:
    publisher = Publisher(postgres_url)
    assert publisher.channel is not None
    try:
        assert application_names(admin) == []  # a command that never writes holds nothing
        publisher.publish([1])
        eventually(lambda: application_names(admin) == [SENDING_ONLY_NAME])
        assert not publisher.listening
    finally:
        publisher.close()
    eventually(lambda: application_names(admin) == [])


def test_the_channel_reconnects_when_its_connection_is_terminated(
    postgres_url: str, notifications: Notifications, admin: PgConnection
) -> None:
    channel = sending_channel(postgres_url)
    try:
        channel.send([1])
        notifications.receive_until(lambda: 1 in notifications.chat_ids())
        first_backend = channel.backend_pid
        terminate(admin, first_backend)
        channel.send([2])
        notifications.receive_until(lambda: 2 in notifications.chat_ids())
        assert channel.backend_pid not in (None, first_backend)
    finally:
        channel.close()


def test_a_hint_sent_while_the_server_refuses_connections_goes_once_it_is_back(
    postgres_url: str, postgres_server: str, notifications: Notifications, admin: PgConnection
) -> None:
    channel = sending_channel(postgres_url)
    database = notifications.connection.info.dbname

    def allow_connections(allowed: bool) -> None:
        # From the server's maintenance database: a session cannot lock out its own.
        server = connect(postgres_server, 5, "test server admin")
        try:
            with server.cursor() as cursor:
                cursor.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allowed}')
        finally:
            server.close()

    try:
        channel.send([1])
        notifications.receive_until(lambda: 1 in notifications.chat_ids())
        allow_connections(False)
        try:
            terminate(admin, channel.backend_pid)
            channel.send([2])
            time.sleep(0.5)  # attempts to connect, refused, and backing off
            assert 2 not in notifications.chat_ids()
        finally:
            allow_connections(True)
        notifications.receive_until(lambda: 2 in notifications.chat_ids())
    finally:
        channel.close()


# Receiving: the same connection LISTENs, once there is someone to deliver to


def test_own_notifications_are_dropped_by_pid_and_others_arrive(
    postgres_url: str, notifications: Notifications, admin: PgConnection, no_channels: None
) -> None:
    received = Received()
    channel = HintChannel(postgres_url, received, connect_timeout=5, batch_delay=0.002)
    try:
        channel.listen()
        eventually(lambda: channel.listening)
        assert application_names(admin) == [APPLICATION_NAME]
        channel.send([1])
        notifications.receive_until(lambda: 1 in notifications.chat_ids())
        with admin.cursor() as cursor:  # another process's hint
            cursor.execute("SELECT pg_notify(%s, '2,3')", (CHANNEL,))
        eventually(lambda: received.chat_ids == [{2, 3}])
        # The channel's own hint reached its connection before the other one, and was dropped.
        assert received.wakes == 1  # once, as it began to listen
    finally:
        channel.close()
    assert not channel.listening


def test_a_hint_from_one_process_wakes_the_streams_of_another(
    run: Runner, postgres_url: str
) -> None:
    async def scenario() -> None:
        # The writer's batch waits, so that its local wake-up comes well before the NOTIFY.
        writer = Publisher(postgres_url, batch_delay=QUIET_SECONDS / 2)
        reader = Publisher(postgres_url)
        await started(writer, reader)
        try:
            with (
                subscribe(reader.hints, 3) as remote,
                subscribe(reader.hints, 4) as other_chat,
                subscribe(writer.hints, 3) as local,
            ):
                await asyncio.to_thread(writer.publish, [3])
                assert await local.wait(5)
                assert await remote.wait(5)
                assert not await other_chat.wait(QUIET_SECONDS)
                # The writer's own hint came back through LISTEN too, and was dropped there:
                # its streams were woken at commit.
                assert not await local.wait(QUIET_SECONDS)
            assert reader.wait_timeout(15.0) == 15.0
        finally:
            await writer.stop()
            await reader.stop()

    run(scenario)


def test_a_process_that_wrote_before_it_listens_listens_all_the_same(
    run: Runner, postgres_url: str, admin: PgConnection, no_channels: None
) -> None:
    async def scenario() -> None:
        publisher = Publisher(postgres_url)
        await asyncio.to_thread(publisher.publish, [1])
        await until(lambda: application_names(admin) == [SENDING_ONLY_NAME])
        try:
            await started(publisher)
            assert application_names(admin) == [APPLICATION_NAME]
        finally:
            await publisher.stop()

    run(scenario)


def test_the_channel_reconnects_and_wakes_every_stream(
    run: Runner, postgres_url: str, admin: PgConnection
) -> None:
    async def scenario() -> None:
        writer, reader = Publisher(postgres_url), Publisher(postgres_url)
        await started(writer, reader)
        assert reader.channel is not None
        try:
            with subscribe(reader.hints, 8) as subscription:
                first_backend = reader.channel.backend_pid
                terminate(admin, first_backend)
                # Woken as the connection goes: the stream re-reads, and polls from now on.
                assert await subscription.wait(5)
                assert not reader.listening
                assert reader.wait_timeout(15.0) == POLL_INTERVAL
                # Woken again once it is back, for what was committed while nobody listened.
                assert await subscription.wait(5)
                assert reader.listening
                assert reader.channel.backend_pid not in (None, first_backend)
                await asyncio.to_thread(writer.publish, [8])
                assert await subscription.wait(5)
        finally:
            await writer.stop()
            await reader.stop()
        assert not reader.listening

    run(scenario)
