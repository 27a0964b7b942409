"""The hint channel of live delivery: "chat N has news", within a process and across processes.

Hints carry no data; a stream woken by one re-reads the database. What matters is that a hint
wakes the right streams, from any thread and from any process, that writers' hints are batched
after commit, and that the channel heals by itself when its connections are cut.

Two processes are simulated by two Publishers, each with its own token and connections.
Scenarios run on the standard asyncio loop and on uvloop (what uvicorn runs).
"""

import asyncio
import select
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop
from sqlalchemy.engine import make_url

from infrastructure.hints import POLL_INTERVAL, HintSender, LocalHints, Publisher
from infrastructure.hints.connections import PgConnection, connect_autocommit, connect_params
from infrastructure.hints.payload import (
    CHANNEL,
    MAX_PAYLOAD_BYTES,
    Hint,
    decode,
    encode,
    is_from,
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
        self.connection = connect_autocommit(database_url, 5, "test listener")
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self.hints: list[Hint] = []

    def chat_ids(self) -> set[int]:
        return {chat_id for hint in self.hints for chat_id in hint.chat_ids}

    def receive_until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only these hints arrived: {self.hints}"
            select.select([self.connection], [], [], remaining)
            self.connection.poll()
            for notification in self.connection.notifies:
                hint = decode(notification.payload)
                assert hint is not None, notification.payload
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
        hints.attach(asyncio.get_running_loop())
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
        hints.attach(asyncio.get_running_loop())
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
        hints.attach(asyncio.get_running_loop())
        with subscribe(hints, 1) as first, subscribe(hints, 2) as second:
            in_thread(hints.wake_all)
            assert await first.wait(5)
            assert await second.wait(5)

    run(scenario)


def test_no_state_is_kept_for_a_chat_nobody_follows(run: Runner) -> None:
    async def scenario() -> None:
        hints = LocalHints()
        hints.attach(asyncio.get_running_loop())
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
    assert (publisher.sender, publisher.listener) == (None, None)

    async def scenario() -> None:
        await publisher.start()
        with subscribe(publisher.hints, 5) as subscription:
            await asyncio.to_thread(publisher.publish, [5])
            assert await subscription.wait(5)
        assert not publisher.listening
        assert publisher.wait_timeout(15.0) == POLL_INTERVAL
        await publisher.stop()

    run(scenario)


# What a hint looks like on the wire


def test_a_long_list_of_chats_is_split_under_the_payload_limit() -> None:
    chat_ids = set(range(10**12, 10**12 + 3_000))
    payloads = encode("token", chat_ids)
    assert len(payloads) > 1
    assert all(len(payload.encode()) <= MAX_PAYLOAD_BYTES for payload in payloads)
    hints = [decode(payload) for payload in payloads]
    assert {hint.token for hint in hints if hint} == {"token"}
    assert {chat_id for hint in hints if hint for chat_id in hint.chat_ids} == chat_ids
    assert decode("not a hint") is None


def test_a_payload_tells_its_sender_before_its_ids_are_read() -> None:
    [payload] = encode("3f9a0c1d", [7, 12])
    assert is_from(payload, "3f9a0c1d")
    assert not is_from(payload, "3f9a")  # another process, whose token begins this one
    assert not is_from(payload, "3f9a0c1d2e")
    assert not is_from("not a hint", "3f9a0c1d")


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


# Sending: after commit, batched, from one thread


def test_many_hints_go_out_as_few_notifications(
    postgres_url: str, notifications: Notifications
) -> None:
    sender = HintSender(postgres_url, "sender-test", connect_timeout=5, batch_delay=0.02)
    senders = 4
    per_sender = 250

    def send_many(first: int) -> None:
        for chat_id in range(first, first + per_sender):
            sender.send([chat_id])

    threads = [threading.Thread(target=send_many, args=(n * per_sender,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SCENARIO_TIMEOUT)
    sender.close()

    everything = set(range(senders * per_sender))
    notifications.receive_until(lambda: notifications.chat_ids() == everything)
    assert len(notifications.hints) <= 10, f"{len(notifications.hints)} NOTIFYs for 1,000 hints"
    assert {hint.token for hint in notifications.hints} == {"sender-test"}


def test_hints_that_trickle_in_wait_for_the_batch(
    postgres_url: str, notifications: Notifications
) -> None:
    batch_delay = 0.05
    sender = HintSender(postgres_url, "sender-test", connect_timeout=5, batch_delay=batch_delay)
    began = time.monotonic()
    for chat_id in range(100):
        sender.send([chat_id])
        time.sleep(0.001)
    batches = (time.monotonic() - began) / batch_delay
    sender.close()

    notifications.receive_until(lambda: notifications.chat_ids() == set(range(100)))
    assert len(notifications.hints) <= batches + 2, f"{len(notifications.hints)} NOTIFYs"


def test_a_list_longer_than_one_payload_arrives_whole(
    postgres_url: str, notifications: Notifications
) -> None:
    sender = HintSender(postgres_url, "sender-test", connect_timeout=5)
    chat_ids = set(range(10**12, 10**12 + 3_000))
    sender.send(chat_ids)
    sender.close()
    notifications.receive_until(lambda: notifications.chat_ids() == chat_ids)


def test_close_sends_what_is_queued(postgres_url: str, notifications: Notifications) -> None:
    # A CLI command: no event loop, posts once, exits. Its hint must still go out.
    publisher = Publisher(postgres_url, batch_delay=30.0)
    publisher.publish([42])
    started_closing = time.monotonic()
    publisher.close()
    assert time.monotonic() - started_closing < 2.0
    notifications.receive_until(lambda: 42 in notifications.chat_ids())
    assert notifications.hints[0].token == publisher.token


def test_the_sender_reconnects_when_its_connection_is_terminated(
    postgres_url: str, notifications: Notifications, admin: PgConnection
) -> None:
    sender = HintSender(postgres_url, "sender-test", connect_timeout=5)
    try:
        sender.send([1])
        notifications.receive_until(lambda: 1 in notifications.chat_ids())
        first_backend = sender.backend_pid
        terminate(admin, first_backend)
        sender.send([2])
        notifications.receive_until(lambda: 2 in notifications.chat_ids())
        assert sender.backend_pid not in (None, first_backend)
    finally:
        sender.close()


# Receiving: one LISTEN connection per process, on its event loop


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
                # The writer's own hint came back through LISTEN too, and was skipped there:
                # its streams were woken at commit.
                assert not await local.wait(QUIET_SECONDS)
            assert reader.wait_timeout(15.0) == 15.0
        finally:
            await writer.stop()
            await reader.stop()

    run(scenario)


def test_the_listener_reconnects_and_wakes_every_stream(
    run: Runner, postgres_url: str, admin: PgConnection
) -> None:
    async def scenario() -> None:
        writer, reader = Publisher(postgres_url), Publisher(postgres_url)
        await started(writer, reader)
        assert reader.listener is not None
        try:
            with subscribe(reader.hints, 8) as subscription:
                first_backend = reader.listener.backend_pid
                terminate(admin, first_backend)
                # Woken as the connection goes: the stream re-reads, and polls from now on.
                assert await subscription.wait(5)
                assert not reader.listening
                assert reader.wait_timeout(15.0) == POLL_INTERVAL
                # Woken again once it is back, for what was committed while nobody listened.
                assert await subscription.wait(5)
                assert reader.listening
                assert reader.listener.backend_pid not in (None, first_backend)
                await asyncio.to_thread(writer.publish, [8])
                assert await subscription.wait(5)
        finally:
            await writer.stop()
            await reader.stop()
        assert not reader.listening

    run(scenario)


class FreezableRelay:
    """A TCP relay to the server whose open connections can be made to go silent.

    A frozen connection stays open but carries nothing either way, as with a host that
    vanished or a network that drops packets; new connections are relayed normally.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._frozen_before: list[threading.Event] = []
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        for frozen in self._frozen_before:
            frozen.set()

    def close(self) -> None:
        self._closed.set()
        for connection in self._sockets:
            connection.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            frozen = threading.Event()
            self._frozen_before.append(frozen)
            threading.Thread(target=self._relay, args=(client, server, frozen), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket, frozen: threading.Event) -> None:
        peer = {client: server, server: client}
        while not self._closed.is_set():
            if frozen.is_set():
                time.sleep(0.05)
                continue
            try:
                readable = select.select([client, server], [], [], 0.05)[0]
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    peer[source].sendall(data)
            except OSError:
                return


def test_the_listener_gives_up_a_connection_that_went_silent(
    run: Runner, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    if url.host is None or url.host.startswith("/"):
        pytest.skip("the server is reached through a socket file, not TCP")
    relay = FreezableRelay(url.host, url.port or 5432)
    through_relay = url.set(port=relay.port).render_as_string(hide_password=False)

    async def scenario() -> None:
        reader = Publisher(through_relay, liveness_interval=0.3)
        await started(reader)
        assert reader.listener is not None
        first_backend = reader.listener.backend_pid
        try:
            relay.freeze()
            await until(lambda: not reader.listening)
            await until(lambda: reader.listener is not None and reader.listener.up)
            assert reader.listener.backend_pid != first_backend
        finally:
            await reader.stop()

    try:
        run(scenario)
    finally:
        relay.close()
