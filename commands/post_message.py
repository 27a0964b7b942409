from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import col, select

from commands.clock import Clock
from domain.errors import ChatNotFound
from domain.events import MessagePosted
from domain.rules import is_possible_id, validate_idempotency_key, validate_text
from infrastructure.idempotency import IdempotencyKeys
from infrastructure.tables import ChatRecord, MessageRecord
from infrastructure.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class PostMessage:
    chat_id: int
    text: str
    # A retry with the same key, chat and text gets the message posted the first time.
    idempotency_key: str | None = None


class PostMessageHandler:
    """Appends a message to a chat.

    Posts to one chat are serialised by a lock on the chat's row (the database write lock
    on SQLite), held until commit: ids, and so the chat's order, follow commit order, and
    `created_at` is taken under the lock, never earlier than the chat's previous message.
    Posts to different chats do not wait for each other on PostgreSQL.
    """

    def __init__(
        self, uow: Callable[[], UnitOfWork], clock: Clock, idempotency_keys: IdempotencyKeys
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._keys = idempotency_keys

    def __call__(self, command: PostMessage) -> MessagePosted:
        text = validate_text(command.text)
        key = command.idempotency_key
        if key is not None:
            validate_idempotency_key(key)
        if not is_possible_id(command.chat_id):
            raise ChatNotFound(command.chat_id)
        with self._uow() as uow:
            locked = uow.session.exec(
                select(ChatRecord.id).where(ChatRecord.id == command.chat_id).with_for_update()
            ).first()
            if locked is None:
                raise ChatNotFound(command.chat_id)
            scope = f"post_message:{command.chat_id}"
            if key is not None:
                replayed = self._keys.replay(
                    uow.session, scope, key, {"text": text}, MessagePosted, chat_id=command.chat_id
                )
                if replayed is not None:
                    return replayed
            previous = uow.session.exec(
                select(MessageRecord.created_at)
                .where(MessageRecord.chat_id == command.chat_id)
                .order_by(col(MessageRecord.id).desc())
                .limit(1)
            ).first()
            now = self._clock()
            message = MessageRecord(
                chat_id=command.chat_id,
                text=text,
                created_at=max(now, previous) if previous is not None else now,
            )
            uow.session.add(message)
            uow.session.flush()
            assert message.id is not None  # assigned by the INSERT
            event = MessagePosted(
                message_id=message.id,
                chat_id=message.chat_id,
                text=message.text,
                created_at=message.created_at,
            )
            uow.record(event)
            if key is not None:
                self._keys.remember(uow.session, scope, key, event)
            uow.commit()
        return event
