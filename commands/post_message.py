from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import BigInteger, bindparam, insert, select, update

from domain.errors import ChatNotFound
from domain.events import MessagePosted
from domain.rules import is_possible_id, validate_idempotency_key, validate_text
from infrastructure.clock import Clock
from infrastructure.tables import chats, messages
from infrastructure.unit_of_work import UnitOfWork

# Built once: constructing statements per call costs more than running them.
# Locks the chat's row (until commit) and takes the next seq in one statement.
NEXT_SEQ = (
    update(chats)
    .where(chats.c.id == bindparam("chat_id"))
    .values(last_seq=chats.c.last_seq + 1)
    .returning(chats.c.last_seq)
)
# The chat's previous message is the one just before the seq taken: seqs have no gaps.
# A point lookup on the (chat_id, seq) index, whatever the chat's size.
PREVIOUS_MESSAGE_TIME = select(messages.c.created_at).where(
    messages.c.chat_id == bindparam("chat_id"),
    messages.c.seq == bindparam("seq", type_=BigInteger) - 1,
)
INSERT_MESSAGE = insert(messages).returning(messages.c.id)


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
    `seq`, so seqs (and ids) follow commit order without gaps, and `created_at` is taken
    under the lock, never earlier than the chat's previous message.
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
            seq = uow.connection.execute(NEXT_SEQ, {"chat_id": chat_id}).scalar()
            if seq is None:
                raise ChatNotFound(chat_id)
            posted = uow.once(
                "post_message",
                key,
                {"text": text},
                PostMessageResult,
                lambda: self._post(uow, chat_id, seq, text),
                chat_id=chat_id,
            )
            if not posted.replayed:  # a replay rolls back: its seq was never used
                uow.commit()
            return replace(posted, consistency_token=uow.consistency_token())

    def _post(self, uow: UnitOfWork, chat_id: int, seq: int, text: str) -> PostMessageResult:
        # A statement of its own, after the lock: it sees every post committed before.
        previous = uow.connection.execute(
            PREVIOUS_MESSAGE_TIME, {"chat_id": chat_id, "seq": seq}
        ).scalar()
        now = self._clock()
        created_at = max(now, previous) if previous is not None else now
        message_id = uow.connection.execute(
            INSERT_MESSAGE,
            {"chat_id": chat_id, "seq": seq, "text": text, "created_at": created_at},
        ).scalar_one()
        uow.record(MessagePosted(message_id, chat_id, seq, text, created_at))
        return PostMessageResult(message_id, chat_id, seq, text, created_at)
