"""A command whose stdout nobody reads any more, as in `chatapi show 1 | true` or
`chatapi history 1 --after 0 | head -c 200`: exit status 141 (as a shell reports a command its
reader has left), nothing on stderr, no traceback.

Real processes and real pipes. One SQLite database serves the module: what happens is the
same on either backend, and each command is a process of its own, which takes a while.
(test_follow.py has `chatapi follow | head -n 2`; `--help` is argparse's, which ignores
a failed write of its own and exits 0.)"""

import os
import subprocess
from dataclasses import dataclass

import pytest

from commands.create_chat import CreateChat
from commands.post_message import PostMessage
from domain.principals import LOCAL
from infrastructure import migrations
from tests.conftest import EmptyDatabases
from tests.integration.test_cli import CHATAPI, COMMAND_TIMEOUT_SECONDS, cli_env
from tests.support.servers import container_for

EXIT_BROKEN_PIPE = 141
# 100 messages of 2,000 characters: `history --after 0` prints ~220 kB, more than a pipe holds
# (64 kB on Linux), so the command is still writing when its reader leaves.
MESSAGES = 100
TEXT = "x" * 2_000


@dataclass(frozen=True)
class Stored:
    url: str
    chat_id: int


@pytest.fixture(scope="module")
def stored(databases: EmptyDatabases) -> Stored:
    url = databases.new("sqlite")
    migrations.upgrade(url)
    container = container_for(url)
    try:
        chat_id = container.create_chat()(CreateChat(title="piped", principal=LOCAL)).chat_id
        post = container.post_message()
        for _ in range(MESSAGES):
            post(PostMessage(chat_id=chat_id, text=TEXT, principal=LOCAL))
    finally:
        container.shutdown_resources()
    return Stored(url, chat_id)


def quiet_exit(process: subprocess.Popen[bytes]) -> None:
    """It ended with 141 and wrote nothing on stderr."""
    assert process.stderr is not None
    errors = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(COMMAND_TIMEOUT_SECONDS) == EXIT_BROKEN_PIPE, errors
    assert errors == ""


@pytest.mark.parametrize(
    "args",
    [
        ("show", "{chat}"),
        ("create-chat", "written, then not shown"),
        ("follow", "{chat}", "--after", "0"),  # its first line
    ],
    ids=["show", "create-chat", "follow"],
)
def test_a_pipe_closed_before_the_command_writes(stored: Stored, args: tuple[str, ...]) -> None:
    """`chatapi show 1 | true`: the reader is gone before the first byte."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.Popen(
            [str(CHATAPI), *(arg.format(chat=stored.chat_id) for arg in args)],
            env=cli_env(stored.url),
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_end)  # the command holds the only write end
    quiet_exit(process)


def test_a_reader_that_stops_after_200_bytes(stored: Stored) -> None:
    """`chatapi history 1 --after 0 --limit 100 | head -c 200`."""
    args = ["history", str(stored.chat_id), "--after", "0", "--limit", str(MESSAGES)]
    process = subprocess.Popen(
        [str(CHATAPI), *args],
        env=cli_env(stored.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    head = subprocess.run(
        ["head", "-c", "200"],
        stdin=process.stdout,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=True,
    )
    process.stdout.close()  # head was the only reader
    assert len(head.stdout) == 200
    assert head.stdout.startswith(b'{"chat_id":'), head.stdout
    quiet_exit(process)
