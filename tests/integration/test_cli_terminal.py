"""What the CLI prints to a terminal: stored C1 and bidirectional controls as JSON escapes,
never raw (a terminal would act on them); to a pipe, the same JSON as ever, byte for byte.

The titles and texts are written with SQL, as rows stored before such characters were refused
would be; the CLI runs in a process of its own, its stdout a pseudo-terminal or a pipe."""

import json
import os
import pty
import select
import subprocess
import sys
import termios
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cli.terminal import TERMINAL_UNSAFE, escaped
from infrastructure import migrations
from infrastructure.rebuild import rebuild_read_models
from tests.conftest import EmptyDatabases
from tests.support.database import inspector

COMMAND_TIMEOUT_SECONDS = 60.0
# CSI (U+009B) would start an escape sequence; U+202E shows what follows right to left.
TITLE = "evil \u009b31m title \u202etxt.exe \u2066x\u2069 ok"
TEXT = "hi \u0085\u009d0;owned\u009c \u200f\u202a text \u00e9\U0001f600"


def environment(database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DB_")}
    env.pop("READ_DATABASE_URL", None)
    return {**env, "DATABASE_URL": database_url, "PYTHONIOENCODING": "utf-8"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def through_a_pipe(database_url: str, *args: str) -> str:
    result = subprocess.run(
        command(*args),
        env=environment(database_url),
        capture_output=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result
    return result.stdout.decode()


class Terminal:
    """A command whose stdout is a pseudo-terminal (output not post-processed: no \\r)."""

    def __init__(self, database_url: str, *args: str) -> None:
        self.master, slave = pty.openpty()
        attributes = termios.tcgetattr(slave)
        attributes[1] &= ~termios.OPOST  # the line discipline writes \n as \r\n otherwise
        termios.tcsetattr(slave, termios.TCSANOW, attributes)
        self.process = subprocess.Popen(
            command(*args),
            env=environment(database_url),
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        self.received = b""

    def read_until(self, done: bytes | None) -> str:
        """What it printed, until `done` is in it (None: until it closes the terminal)."""
        deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
        while done is None or done not in self.received:
            assert time.monotonic() < deadline, self.received
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every end of the terminal is closed
                break
            if not chunk:
                break
            self.received += chunk
        return self.received.decode()

    def finish(self) -> str:
        output = self.read_until(None)
        self.process.wait(timeout=COMMAND_TIMEOUT_SECONDS)
        assert self.process.stderr is not None
        stderr = self.process.stderr.read().decode()
        assert self.process.returncode == 0, (self.process.returncode, output, stderr)
        os.close(self.master)
        self.process.stderr.close()
        return output


def on_a_terminal(database_url: str, *args: str) -> str:
    return Terminal(database_url, *args).finish()


@dataclass(frozen=True)
class Stored:
    """A migrated database with two chats of TITLE, each holding a message of TEXT, stored
    with SQL: `shown` for the reads, `followed` for the test that deletes it."""

    url: str
    shown: int
    followed: int


@pytest.fixture(scope="module")
def stored(backend: str, databases: EmptyDatabases) -> Stored:
    url = databases.new(backend)
    migrations.upgrade(url)
    chats = [json.loads(through_a_pipe(url, "create-chat", "plain"))["id"] for _ in range(2)]
    for chat_id in chats:
        through_a_pipe(url, "post", str(chat_id), "plain")
    with inspector(url) as engine, engine.begin() as connection:
        connection.execute(text("UPDATE chats SET title = :title"), {"title": TITLE})
        connection.execute(text("UPDATE messages SET text = :text"), {"text": TEXT})
    engine = create_engine(url, poolclass=NullPool)
    try:
        rebuild_read_models(engine)  # as `chatapi rebuild-read-models` does
    finally:
        engine.dispose()
    return Stored(url, *chats)


def assert_escaped_for_the_terminal(piped: str, shown: str) -> None:
    piped_lines, shown_lines = piped.rstrip("\n").split("\n"), shown.rstrip("\n").split("\n")
    assert len(shown_lines) == len(piped_lines) >= 1, (piped, shown)
    for raw, line in zip(piped_lines, shown_lines, strict=True):
        assert TERMINAL_UNSAFE.search(line) is None, line
        assert line == escaped(raw)  # the escapes are the only change
        assert json.loads(line) == json.loads(raw)  # and they mean the same


@pytest.mark.parametrize(
    "args",
    [("show", "{chat}"), ("list",), ("history", "{chat}"), ("history", "{chat}", "--after", "0")],
    ids=["show", "list", "history", "history-after"],
)
def test_a_terminal_gets_the_controls_escaped_a_pipe_gets_them_as_stored(
    stored: Stored, args: tuple[str, ...]
) -> None:
    argv = [arg.format(chat=stored.shown) for arg in args]

    piped = through_a_pipe(stored.url, *argv)
    shown = on_a_terminal(stored.url, *argv)

    # The pipe: the characters themselves, as the HTTP API sends them.
    unsafe = set(TERMINAL_UNSAFE.findall(piped))
    assert unsafe, piped
    assert not any(f"\\u{ord(char):04x}" in piped for char in unsafe), piped
    # The terminal: the same JSON, each of them escaped; the other characters left as they are.
    assert_escaped_for_the_terminal(piped, shown)
    for char in unsafe:
        assert f"\\u{ord(char):04x}" in shown, (char, shown)
    if "\u00e9\U0001f600" in piped:
        assert "\u00e9\U0001f600" in shown


def test_follow_escapes_each_event_as_it_comes_on_a_terminal(stored: Stored) -> None:
    following = Terminal(stored.url, "follow", str(stored.followed), "--after", "0")
    first = following.read_until(b"\n")
    through_a_pipe(stored.url, "delete", str(stored.followed))
    lines = following.finish().rstrip("\n").split("\n")

    assert first.split("\n")[0] == lines[0]
    posted, deleted = (json.loads(line) for line in lines)
    assert posted["data"]["text"] == TEXT
    assert deleted["event"] == "chat.deleted"
    assert TERMINAL_UNSAFE.search(lines[0]) is None, lines[0]
    assert "\\u009d" in lines[0]
