from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import insert

from commands.clock import Clock
from domain.events import ChatCreated
from domain.rules import normalize_title, validate_idempotency_key
from infrastructure.idempotency import IdempotencyKeys
from infrastructure.tables import ChatRecord
from infrastructure.unit_of_work import UnitOfWork

chats = ChatRecord.__table__  # type: ignore[attr-defined]

SCOPE = "create_chat"
INSERT_CHAT = insert(chats).returning(chats.c.id)  # built once, like every hot statement


@dataclass(frozen=True, slots=True)
class CreateChat:
    title: str
    # A retry with the same key and title gets the chat created the first time.
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class CreateChatResult(ChatCreated):
    """The chat created, and whether this call only replayed an earlier one's result."""

    # Not part of equality: a replay is the same chat, delivered again.
    replayed: bool = field(default=False, compare=False)


class CreateChatHandler:
    def __init__(
        self, uow: Callable[[], UnitOfWork], clock: Clock, idempotency_keys: IdempotencyKeys
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._keys = idempotency_keys

    def __call__(self, command: CreateChat) -> CreateChatResult:
        title = normalize_title(command.title)
        key = command.idempotency_key
        if key is not None:
            validate_idempotency_key(key)
        with self._uow() as uow:
            if key is not None:
                request = {"title": title}
                first = self._keys.replay(uow.connection, SCOPE, key, request, ChatCreated)
                if first is not None:
                    return CreateChatResult(
                        first.chat_id, first.title, first.created_at, replayed=True
                    )
            created_at = self._clock()
            chat_id = uow.connection.execute(
                INSERT_CHAT, {"title": title, "created_at": created_at}
            ).scalar_one()
            event = ChatCreated(chat_id=chat_id, title=title, created_at=created_at)
            uow.record(event)
            if key is not None:
                self._keys.remember(uow.connection, SCOPE, key, event)
            uow.commit()
        return CreateChatResult(chat_id, title, created_at)
