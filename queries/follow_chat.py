"""A chat's messages after a seq, then each new one as it comes, until the chat is deleted.

For scripts and worker loops, which block: `for event in container.follow_chat()(FollowChat(7))`.
Every read is GetMessagesAfter from the last seq yielded, so nothing is skipped or repeated
whatever the hints do; between reads it waits for a hint for the chat, at most POLL_INTERVAL.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from domain.errors import ChatNotFound
from domain.events import ChatDeleted
from domain.principals import Principal
from domain.rules import MAX_LIMIT
from infrastructure.hints.blocking import ChatHints
from queries.dtos import MessageDTO
from queries.get_messages_after import (
    GetMessagesAfter,
    GetMessagesAfterHandler,
    MessagesAfterDTO,
    validate_after,
)

# The longest a new message waits for a read when no hint comes (SQLite, a lost hint).
POLL_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class FollowChat:
    chat_id: int
    after: int = 0  # a seq: follow from the message after it; 0 for the whole chat
    principal: Principal = field(kw_only=True)


FollowedEvent = MessageDTO | ChatDeleted


class FollowChatHandler:
    """Calling it reads the first page, so a missing chat (ChatNotFound) or a seq past the
    chat's end (ResumePointAhead) is raised at once; the iterator it returns then yields every
    message in seq order, blocking while there is none, and a ChatDeleted last."""

    def __init__(
        self,
        read: GetMessagesAfterHandler,
        open_hints: Callable[[int], ChatHints],
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._read = read
        self._open_hints = open_hints
        self._poll_interval = poll_interval

    def __call__(self, query: FollowChat) -> Iterator[FollowedEvent]:
        after = validate_after(query.after)
        return self._follow(query, self._page(query, after), after)

    def _page(self, query: FollowChat, after: int) -> MessagesAfterDTO:
        return self._read(
            GetMessagesAfter(query.chat_id, after, MAX_LIMIT, principal=query.principal)
        )

    def _follow(
        self, query: FollowChat, page: MessagesAfterDTO, after: int
    ) -> Iterator[FollowedEvent]:
        chat_id = page.chat_id
        hints = self._open_hints(chat_id)
        try:
            while True:
                yield from page.messages
                if page.messages:
                    after = page.messages[-1].seq
                if page.next_after is None:
                    # At the chat's end for now: a commit wakes the wait, or its timeout does.
                    hints.wait(self._poll_interval)
                try:
                    page = self._page(query, after)
                except ChatNotFound:
                    yield ChatDeleted(chat_id=chat_id)
                    return
        finally:
            hints.close()
