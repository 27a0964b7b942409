"""`chatapi follow`: a chat's events as JSON lines, the same events as its HTTP event stream.

{"event":"message.posted","id":3,"data":{...the message as POST returned it...}}
{"event":"chat.deleted","data":{"chat_id":1}}

Like the HTTP stream (and `tail -f`), it starts at the chat's end: only what is posted next.
With `--after SEQ` it first prints the messages after that seq (0: every message).
"""

import json
import sys
import time

from api.live.sse import CHAT_DELETED, MESSAGE_POSTED
from api.schemas import MessageResponse
from cli.closed_stdout import reader_gone
from cli.terminal import print_line
from domain.events import ChatDeleted
from domain.principals import LOCAL
from infrastructure.container import Container
from infrastructure.hints.blocking import ChatHints
from queries.follow_chat import FollowChat, FollowedEvent
from queries.get_messages_after import GetMessagesAfter

# The longest a wait goes without looking at stdout: `follow | head -n 2` ends this soon
# after head has exited, not at the next message, which may never come.
STDOUT_CHECK_SECONDS = 0.5


class StdoutWatchingHints:
    """A chat's hints, waited for in slices of STDOUT_CHECK_SECONDS, between which stdout is
    checked: once its reader is gone, the wait raises BrokenPipeError as a write would."""

    def __init__(self, hints: ChatHints, stdout: int) -> None:
        self._hints = hints
        self._stdout = stdout

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if reader_gone(self._stdout):
                raise BrokenPipeError("stdout's reader has gone")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._hints.wait(min(remaining, STDOUT_CHECK_SECONDS)):
                return True

    def close(self) -> None:
        self._hints.close()


def event_line(event: FollowedEvent) -> str:
    if isinstance(event, ChatDeleted):
        deleted = {"event": CHAT_DELETED, "data": {"chat_id": event.chat_id}}
        return json.dumps(deleted, separators=(",", ":"))
    data = MessageResponse.model_validate(event).model_dump_json()  # as HTTP renders it
    return f'{{"event":"{MESSAGE_POSTED}","id":{event.seq},"data":{data}}}'


def chat_end(container: Container, chat_id: int) -> int:
    """The chat's last seq as a read finds it now: following after it prints what is next."""
    return container.get_messages_after()(GetMessagesAfter(chat_id, 0, 1, principal=LOCAL)).last_seq


def follow(container: Container, chat_id: int, after: int | None) -> None:
    """Print every event of the chat after `after` (None: after its end as it is now), one
    line each as it comes, until the chat is deleted. A missing chat or an `after` past its
    end raises before anything is printed."""
    stdout = sys.stdout.fileno()

    def open_hints(chat_id: int) -> ChatHints:
        return StdoutWatchingHints(container.chat_hints(chat_id), stdout)

    start = chat_end(container, chat_id) if after is None else after
    following = container.follow_chat(open_hints=open_hints)
    for event in following(FollowChat(chat_id=chat_id, after=start, principal=LOCAL)):
        # Flushed line by line: a pipe would otherwise hold events back in its buffer.
        print_line(event_line(event), flush=True)
