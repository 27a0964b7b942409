from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import insert

from domain.events import ChatCreated
from domain.rules import normalize_title, validate_idempotency_key
from infrastructure.clock import Clock
from infrastructure.tables import chats
from infrastructure.unit_of_work import UnitOfWork

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
    # A read that brings it back sees this chat, even from a replica (infrastructure/
    # consistency.py); None on SQLite.
    consistency_token: str | None = field(default=None, compare=False)


class CreateChatHandler:
    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: CreateChat) -> CreateChatResult:
        title = normalize_title(command.title)
        key = validate_idempotency_key(command.idempotency_key)
        with self._uow() as uow:
            created = uow.once(
                "create_chat",
                key,
                {"title": title},
                CreateChatResult,
                lambda: self._create(uow, title),
            )
            uow.commit()
            return replace(created, consistency_token=uow.consistency_token())

    def _create(self, uow: UnitOfWork, title: str) -> CreateChatResult:
        created_at = self._clock()
        chat_id = uow.connection.execute(
            INSERT_CHAT, {"title": title, "created_at": created_at}
        ).scalar_one()
        uow.record(ChatCreated(chat_id=chat_id, title=title, created_at=created_at))
        return CreateChatResult(chat_id, title, created_at)
