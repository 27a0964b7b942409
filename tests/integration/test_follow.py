"""Following a chat without HTTP: FollowChat from the container, `chatapi follow` and
`chatapi history --after` from a shell, and the blocking hint waits under them.

Messages are posted by the test's own process (its container) or by `chatapi post`, while
`chatapi follow` runs as a process of its own; on PostgreSQL hints cross between them.
"""

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from api.schemas import MessageResponse
from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage
from domain.errors import ChatNotFound, InvalidInput, ResumePointAhead
from domain.events import ChatDeleted
from domain.principals import LOCAL
from infrastructure.container import Container
from infrastructure.database import PgConnection
from infrastructure.hints import Publisher
from infrastructure.hints.blocking import BlockingHints, SleepingHints, open_chat_hints
from infrastructure.hints.channel import CHANNEL
from queries.dtos import MessageDTO
from queries.follow_chat import FollowChat, FollowedEvent
from queries.get_messages_after import GetMessagesAfter
from tests.integration.test_cli import CHATAPI, chatapi, cli_env, failed, succeeded
from tests.support.hint_database import terminate
from tests.support.threads import run_in_threads

# Far above what any step takes: a follower that hangs fails its test instead of the suite.
LINE_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
# How soon `follow` exits once its reader has gone, with nothing more to print: it looks at
# stdout every half second (cli/follow.py); the rest is room for a busy machine.
PROMPT_EXIT_SECONDS = 5.0
# How long a wait that nothing should end is watched.
QUIET_SECONDS = 0.3

Json = dict[str, Any]


def create_chat(container: Container, title: str = "followed") -> int:
    return container.create_chat()(CreateChat(title=title, principal=LOCAL)).chat_id


def post(container: Container, chat_id: int, count: int, prefix: str = "message") -> list[Json]:
    """Post `count` messages through the handler; each as POST would have answered it."""
    handler = container.post_message()
    return [
        MessageResponse.from_event(
            handler(PostMessage(chat_id=chat_id, text=f"{prefix} {n}", principal=LOCAL))
        ).model_dump(mode="json")
        for n in range(count)
    ]


def posted_line(message: Json) -> Json:
    return {"event": "message.posted", "id": message["seq"], "data": message}


def deleted_line(chat_id: int) -> Json:
    return {"event": "chat.deleted", "data": {"chat_id": chat_id}}


# --- chatapi follow, a process of its own ---------------------------------------------------


class Follower:
    """`chatapi follow` running; its stdout lines are read as they are flushed."""

    def __init__(self, database_url: str, stderr: Path, *args: str) -> None:
        self._stderr_path = stderr
        self._stderr = stderr.open("w")
        self.process = subprocess.Popen(
            [str(CHATAPI), "follow", *args],
            env=cli_env(database_url),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)

    def lines(self, count: int, timeout: float = LINE_TIMEOUT) -> list[Json]:
        """The next `count` lines, each one JSON object, as they arrive."""
        deadline = time.monotonic() + timeout
        found: list[Json] = []
        while len(found) < count:
            line = self.next_line(max(0.0, deadline - time.monotonic()))
            assert line is not None, f"{len(found)} of {count} lines: {found}"
            found.append(line)
        return found

    def next_line(self, timeout: float) -> Json | None:
        """The next line, one JSON object, if it arrives within `timeout` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        assert line is not None, f"stdout ended: {self.stderr()}"
        assert line.endswith("\n"), line
        return dict(json.loads(line))

    def exit_code(self, timeout: float = EXIT_TIMEOUT) -> int:
        """How it exited; nothing more on stdout after the lines already taken."""
        code = self.process.wait(timeout)
        assert self._lines.get(timeout=LINE_TIMEOUT) is None, "unread output"
        return code

    def stderr(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(EXIT_TIMEOUT)
        self._stderr.close()


StartFollower = Callable[..., Follower]


@pytest.fixture
def follow(database_url: str, container: Container, tmp_path: Path) -> Iterator[StartFollower]:
    """Starts `chatapi follow ARGS...` on the test's database (emptied first by `container`)."""
    started: list[Follower] = []

    def start(*args: str) -> Follower:
        follower = Follower(database_url, tmp_path / f"follow-{len(started)}.err", *args)
        started.append(follower)
        return follower

    yield start
    for follower in started:
        follower.stop()


def test_follow_prints_the_chat_then_each_new_message_then_its_deletion(
    follow: StartFollower, container: Container, database_url: str
) -> None:
    chat_id = create_chat(container)
    backlog = post(container, chat_id, 3, "before")
    follower = follow(str(chat_id), "--after", "0")

    assert follower.lines(3) == [posted_line(message) for message in backlog]

    # From the test's process, then from another `chatapi` process.
    live = post(container, chat_id, 20, "live")
    assert follower.lines(20) == [posted_line(message) for message in live]
    by_cli = succeeded(chatapi(database_url, "post", str(chat_id), "from the shell 😀"))
    assert follower.lines(1) == [posted_line(by_cli)]

    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    assert follower.lines(1) == [deleted_line(chat_id)]
    assert follower.exit_code() == 0
    assert follower.stderr() == ""


def test_follow_without_after_prints_only_what_is_posted_from_then_on(
    follow: StartFollower, container: Container
) -> None:
    """As `GET /chats/{id}/events` without a resume point (and `tail -f`): from the chat's end."""
    chat_id = create_chat(container)
    post(container, chat_id, 3, "before")
    follower = follow(str(chat_id))

    # When it has found the chat's end cannot be seen from here: post until a line comes.
    posted: list[Json] = []  # seq 4, 5, ...
    deadline = time.monotonic() + LINE_TIMEOUT
    first = None
    while first is None:
        assert time.monotonic() < deadline, "no line"
        posted += post(container, chat_id, 1, "new")
        first = follower.next_line(QUIET_SECONDS)

    assert first["id"] > 3, first  # none of those posted before it started
    rest = posted[first["id"] - 4 :]  # from the first it printed, every one, in order
    assert [first, *follower.lines(len(rest) - 1)] == [posted_line(message) for message in rest]
    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    assert follower.lines(1) == [deleted_line(chat_id)]
    assert follower.exit_code() == 0


def test_follow_resumes_after_a_seq(follow: StartFollower, container: Container) -> None:
    chat_id = create_chat(container)
    messages = post(container, chat_id, 5)

    resumed = follow(str(chat_id), "--after", "3")
    at_the_end = follow(str(chat_id), "--after", "5")  # nothing to catch up: only new ones

    assert resumed.lines(2) == [posted_line(message) for message in messages[3:]]
    newer = post(container, chat_id, 2, "newer")
    assert resumed.lines(2) == [posted_line(message) for message in newer]
    assert at_the_end.lines(2) == [posted_line(message) for message in newer]
    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    for follower in (resumed, at_the_end):
        assert follower.lines(1) == [deleted_line(chat_id)]
        assert follower.exit_code() == 0


def test_follow_while_many_write_misses_and_repeats_nothing(
    follow: StartFollower, container: Container
) -> None:
    """Eight threads post 25 messages each: the follower prints seq 1..200 once each, in order,
    exactly as stored."""
    chat_id = create_chat(container)
    follower = follow(str(chat_id), "--after", "0")  # whenever it starts, from the first

    def writer(n: int) -> None:
        post(container, chat_id, 25, f"writer {n}")

    run_in_threads([partial(writer, n) for n in range(8)])

    lines = follower.lines(200)
    assert [line["id"] for line in lines] == list(range(1, 201))
    stored = container.get_messages_after()
    pages = [
        stored(GetMessagesAfter(chat_id=chat_id, after=a, limit=100, principal=LOCAL))
        for a in (0, 100)
    ]
    assert lines == [
        posted_line(MessageResponse.model_validate(message).model_dump(mode="json"))
        for page in pages
        for message in page.messages
    ]
    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    assert follower.lines(1) == [deleted_line(chat_id)]
    assert follower.exit_code() == 0


def test_follow_of_a_missing_chat_exits_3(database_url: str, container: Container) -> None:
    result = chatapi(database_url, "follow", "424242")
    assert failed(result) == "chat 424242 not found"
    assert result.returncode == 3


@pytest.mark.parametrize("after", ["-1", "abc", "1.5", "", " 1", "+1", "1e3", str(2**63)])
def test_follow_with_an_after_that_is_not_a_seq_exits_2(
    database_url: str, container: Container, after: str
) -> None:
    chat_id = create_chat(container)
    result = chatapi(database_url, "follow", str(chat_id), "--after", after)
    assert failed(result) == "after must be a seq: an integer from 0"
    assert result.returncode == 2


def test_follow_after_the_chat_s_last_seq_exits_2_naming_it(
    database_url: str, container: Container
) -> None:
    chat_id = create_chat(container)
    post(container, chat_id, 2)
    result = chatapi(database_url, "follow", str(chat_id), "--after", "9")
    assert failed(result) == f"chat {chat_id} has no message with seq 9: its last seq is 2"
    assert result.returncode == 2


def test_ctrl_c_stops_follow_with_130_and_no_traceback(
    follow: StartFollower, container: Container
) -> None:
    chat_id = create_chat(container)
    post(container, chat_id, 1)
    follower = follow(str(chat_id), "--after", "0")
    assert len(follower.lines(1)) == 1  # it is following: waiting for the next message

    follower.process.send_signal(signal.SIGINT)

    assert follower.exit_code() == 130
    assert follower.stderr() == ""


def test_follow_into_head_exits_once_head_has_its_lines(
    database_url: str, container: Container, tmp_path: Path
) -> None:
    """`chatapi follow 1 --after 0 | head -n 2`, two messages and no more to come: follow
    sees that head has gone while it waits, not at a next message that may never come."""
    chat_id = create_chat(container)
    messages = post(container, chat_id, 2)
    errors = tmp_path / "follow.err"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [str(CHATAPI), "follow", str(chat_id), "--after", "0"],
            env=cli_env(database_url),
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert process.stdout is not None
        try:
            head = subprocess.run(
                ["head", "-n", "2"],
                stdin=process.stdout,
                capture_output=True,
                timeout=EXIT_TIMEOUT,
                check=True,
            )
            process.stdout.close()  # head was its only reader
            head_exited = time.monotonic()
            code = process.wait(PROMPT_EXIT_SECONDS)
            exited_after = time.monotonic() - head_exited
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(EXIT_TIMEOUT)

    assert [json.loads(line) for line in head.stdout.splitlines()] == [
        posted_line(message) for message in messages
    ]
    assert code == 141, errors.read_text()
    assert errors.read_text() == ""
    print(f"\nfollow exited {exited_after:.2f} s after head")


# --- chatapi history --after ----------------------------------------------------------------


def test_history_after_prints_what_http_returns(client: httpx.Client, database_url: str) -> None:
    chat_id = client.post("/chats/", json={"title": "forward"}).json()["id"]
    for n in range(3):
        assert client.post(f"/chats/{chat_id}/messages/", json={"text": f"m{n}"}).is_success

    for after, limit in (("0", "2"), ("2", "2"), ("3", "20"), ("0", "20")):
        shown = succeeded(
            chatapi(database_url, "history", str(chat_id), "--after", after, "--limit", limit)
        )
        path = f"/chats/{chat_id}/messages/?after={after}&limit={limit}"
        answered = client.get(path)
        assert answered.status_code == 200, answered.text
        assert shown == answered.json(), (after, limit)
        assert ("next_after" in shown) == (after == "0" and limit == "2")

    cases = [
        (("--after", "4"), f"chat {chat_id} has no message with seq 4: its last seq is 3", 2),
        (("--after", "x"), "after must be a seq: an integer from 0", 2),
        (("--after", "0", "--before", "abc"), "before and after cannot be used together", 2),
    ]
    for args, message, status in cases:
        result = chatapi(database_url, "history", str(chat_id), *args)
        assert failed(result) == message, args
        assert result.returncode == status, args
    missing = chatapi(database_url, "history", "424242", "--after", "0")
    assert failed(missing) == "chat 424242 not found"
    assert missing.returncode == 3


# --- FollowChat, the query in the container --------------------------------------------------


def take(events: Iterator[FollowedEvent], count: int) -> list[FollowedEvent]:
    return [next(events) for _ in range(count)]


def test_follow_chat_yields_messages_then_the_deletion(container: Container) -> None:
    chat_id = create_chat(container)
    first = post(container, chat_id, 2)
    events = container.follow_chat()(FollowChat(chat_id=chat_id, principal=LOCAL))

    got = take(events, 2)
    assert all(isinstance(event, MessageDTO) for event in got)
    assert [MessageResponse.model_validate(e).model_dump(mode="json") for e in got] == first

    later = post(container, chat_id, 3)
    got = take(events, 3)
    assert [MessageResponse.model_validate(e).model_dump(mode="json") for e in got] == later
    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    assert next(events) == ChatDeleted(chat_id=chat_id)
    assert next(events, None) is None  # and then it ends


def test_follow_chat_refuses_at_once(container: Container) -> None:
    chat_id = create_chat(container)
    post(container, chat_id, 1)
    follow_chat = container.follow_chat()

    with pytest.raises(ChatNotFound):
        follow_chat(FollowChat(chat_id=chat_id + 1_000, principal=LOCAL))
    with pytest.raises(ResumePointAhead):
        follow_chat(FollowChat(chat_id=chat_id, after=2, principal=LOCAL))
    with pytest.raises(InvalidInput):
        follow_chat(FollowChat(chat_id=chat_id, after=-1, principal=LOCAL))


def test_on_postgresql_a_post_wakes_the_follower_at_once(
    backend: str, container: Container
) -> None:
    """With a poll every 30 s, only the hint can bring a message within a few seconds."""
    if backend != "postgresql":
        pytest.skip("SQLite has no hints between connections: followers poll")
    chat_id = create_chat(container)
    events = container.follow_chat(poll_interval=30.0)(FollowChat(chat_id=chat_id, principal=LOCAL))
    posting: dict[int, float] = {}  # seq: when its post was called
    received: dict[int, float] = {}

    def post_later() -> None:
        for seq in range(1, 11):
            time.sleep(0.1)
            posting[seq] = time.monotonic()
            post(container, chat_id, 1)

    writer = threading.Thread(target=post_later)
    writer.start()
    try:
        for seq in range(1, 11):
            event = next(events)
            received[seq] = time.monotonic()
            assert isinstance(event, MessageDTO), event
            assert event.seq == seq
    finally:
        writer.join(LINE_TIMEOUT)
    delays = sorted(received[seq] - posting[seq] for seq in received)
    assert delays[-1] < 5.0, delays
    print(f"\npost called -> FollowChat yielded (s): p50 {delays[4]:.4f}, max {delays[-1]:.4f}")
    container.delete_chat()(DeleteChat(chat_id=chat_id, principal=LOCAL))
    assert next(events) == ChatDeleted(chat_id=chat_id)


# --- the blocking waits ----------------------------------------------------------------------


def notify(admin: PgConnection, payload: str) -> None:
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


def test_blocking_hints_wake_for_their_chat_only(postgres_url: str, admin: PgConnection) -> None:
    hints = BlockingHints(postgres_url, 7, connect_timeout=5)
    another_process = Publisher(postgres_url)
    try:
        assert hints.wait(LINE_TIMEOUT)  # listening now: whatever came before, read again
        assert hints.channel.listening
        assert not hints.wait(QUIET_SECONDS)

        notify(admin, "3,8")  # other chats
        notify(admin, "not a hint")
        assert not hints.wait(QUIET_SECONDS)

        started = time.monotonic()
        another_process.publish([3, 7])
        assert hints.wait(LINE_TIMEOUT)
        assert time.monotonic() - started < 5.0
        assert not hints.wait(QUIET_SECONDS)  # one hint, one wake-up
    finally:
        another_process.close()
        hints.close()
    assert hints.channel.backend_pid is None


def test_blocking_hints_listen_again_after_their_connection_is_killed(
    postgres_url: str, admin: PgConnection
) -> None:
    hints = BlockingHints(postgres_url, 7, connect_timeout=5)
    try:
        assert hints.wait(LINE_TIMEOUT)
        first = hints.channel.backend_pid
        terminate(admin, first)

        # Lost, then listening anew: woken (once or twice), since hints may have gone by.
        assert hints.wait(LINE_TIMEOUT)
        deadline = time.monotonic() + LINE_TIMEOUT
        while not hints.channel.listening:
            assert time.monotonic() < deadline, "not listening again"
            hints.wait(0.05)
        assert hints.channel.backend_pid not in (None, first)
        hints.wait(QUIET_SECONDS)  # the wake-up of the reconnection, unless taken above
        notify(admin, "7")
        assert hints.wait(LINE_TIMEOUT)
    finally:
        hints.close()


def test_blocking_hints_without_a_server_wait_out_their_timeout() -> None:
    unreachable = "postgresql+psycopg2://nobody@127.0.0.1:1/nothing"
    hints = BlockingHints(unreachable, 7, connect_timeout=1)
    started = time.monotonic()
    assert not hints.wait(0.5)
    assert 0.5 <= time.monotonic() - started < 5.0
    hints.close()


def test_on_sqlite_the_waits_only_sleep(tmp_path: Path) -> None:
    hints = open_chat_hints(7, f"sqlite:///{tmp_path}/any.db", connect_timeout=1)
    assert isinstance(hints, SleepingHints)
    started = time.monotonic()
    assert not hints.wait(0.2)
    assert time.monotonic() - started >= 0.2
    on_postgres = open_chat_hints(7, "postgresql+psycopg2://x@127.0.0.1:1/db", 1)
    assert isinstance(on_postgres, BlockingHints)
    on_postgres.close()
