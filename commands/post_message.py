from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import bindparam, case, insert, select, update

from domain.errors import ChatNotFound
from domain.events import MessagePosted
from domain.rules import is_possible_id, validate_idempotency_key, validate_text
from infrastructure.clock import Clock
from infrastructure.tables import chats, messages
from infrastructure.types import UTCDateTime
from infrastructure.unit_of_work import UnitOfWork

# Built once: constructing statements per call costs more than running them.
NOW = bindparam("now", type_=UTCDateTime)
# Locks the chat's row (until commit) and takes the chat's next seq and the new message's
# time in one statement: the clock's, unless the chat's previous message is later (the
# clock went back). A post that waited for the lock computes both from the row as the post
# before it committed it.
TAKE_SEQ_AND_TIME = (
    update(chats)
    .where(chats.c.id == bindparam("chat_id"))
    .values(
        last_seq=chats.c.last_seq + 1,
        # Not greatest() or max(): SQLite's max() is NULL while the chat has no message.
        last_message_at=case((chats.c.last_message_at > NOW, chats.c.last_message_at), else_=NOW),
    )
    .returning(chats.c.last_seq, chats.c.last_message_at)
)
INSERT_MESSAGE = insert(messages).returning(messages.c.id)
# The two above as one statement (one round trip fewer), for a post with nothing to do
# between them: no idempotency key to claim. PostgreSQL only: SQLite has no UPDATE in WITH.
_taken = TAKE_SEQ_AND_TIME.returning(chats.c.id).cte("taken")
TAKE_AND_INSERT = (
    insert(messages)
    .from_select(
        ["chat_id", "seq", "text", "created_at"],
        select(
            _taken.c.id,
            _taken.c.last_seq,
            bindparam("text"),
            _taken.c.last_message_at,
        ),
    )
    .returning(messages.c.id, messages.c.seq, messages.c.created_at)
)


@dataclass(frozen=True, slots=True)
class PostMessage:
    chat_id: int
    text: str
    # A retry with the same key, chat and text gets the message posted the first time.
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class PostMessageResult(MessagePosted):
    """The message posted, and whether this call only replayed an earlier one's result."""

    # Not part of equality: a replay is the same message, delivered again.
    replayed: bool = field(default=False, compare=False)
    # A read that brings it back sees this message, even from a replica (infrastructure/
    # consistency.py); None on SQLite.
    consistency_token: str | None = field(default=None, compare=False)


class PostMessageHandler:
    """Appends a message to a chat.

    Posts to one chat are serialised by a lock on the chat's row (the database write lock
    on SQLite), held until commit: the statement that takes it also takes the chat's next
    `seq`, so seqs (and ids) follow commit order without gaps, and the message's
    `created_at`: the clock as the post asks for the lock, or the chat's previous message's
    time if that is later, so it never decreases along seq.
    Posts to different chats do not wait for each other on PostgreSQL.
    """

    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: PostMessage) -> PostMessageResult:
        text = validate_text(command.text)
        key = validate_idempotency_key(command.idempotency_key)
        chat_id = command.chat_id
        if not is_possible_id(chat_id):
            raise ChatNotFound(chat_id)
        with self._uow() as uow:
            if key is None and uow.connection.dialect.name == "postgresql":
                posted = self._take_and_insert(uow, chat_id, text)
            else:
                posted = self._take_then_insert(uow, chat_id, text, key)
            if not posted.replayed:  # a replay rolls back: its seq was never used
                uow.commit()
            return replace(posted, consistency_token=uow.consistency_token())

    def _take_and_insert(self, uow: UnitOfWork, chat_id: int, text: str) -> PostMessageResult:
        row = uow.connection.execute(
            TAKE_AND_INSERT, {"chat_id": chat_id, "now": self._clock(), "text": text}
        ).first()
        if row is None:
            raise ChatNotFound(chat_id)
        return self._posted(uow, row.id, chat_id, row.seq, text, row.created_at)

    def _take_then_insert(
        self, uow: UnitOfWork, chat_id: int, text: str, key: str | None
    ) -> PostMessageResult:
        taken = uow.connection.execute(
            TAKE_SEQ_AND_TIME, {"chat_id": chat_id, "now": self._clock()}
        ).first()
        if taken is None:
            raise ChatNotFound(chat_id)
        seq, created_at = taken
        # The key is claimed under the chat's lock, before the insert: a retry racing the
        # first post waits for the lock, then finds the key and replays, inserting nothing.
        return uow.once(
            "post_message",
            key,
            {"text": text},
            PostMessageResult,
            lambda: self._insert(uow, chat_id, seq, text, created_at),
            chat_id=chat_id,
        )

    def _insert(
        self, uow: UnitOfWork, chat_id: int, seq: int, text: str, created_at: datetime
    ) -> PostMessageResult:
        message_id = uow.connection.execute(
            INSERT_MESSAGE,
            {"chat_id": chat_id, "seq": seq, "text": text, "created_at": created_at},
        ).scalar_one()
        return self._posted(uow, message_id, chat_id, seq, text, created_at)

    @staticmethod
    def _posted(
        uow: UnitOfWork, message_id: int, chat_id: int, seq: int, text: str, created_at: datetime
    ) -> PostMessageResult:
        uow.record(MessagePosted(message_id, chat_id, seq, text, created_at))
        return PostMessageResult(message_id, chat_id, seq, text, created_at)
