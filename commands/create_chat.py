from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import insert

from domain.events import ChatCreated, MemberAdded
from domain.principals import Principal
from domain.rules import normalize_title, validate_idempotency_key
from infrastructure.clock import Clock
from infrastructure.tables import chat_members, chats
from infrastructure.unit_of_work import UnitOfWork

INSERT_CHAT = insert(chats).returning(chats.c.id)  # built once, like every hot statement
INSERT_MEMBER = insert(chat_members)


@dataclass(frozen=True, slots=True)
class CreateChat:
    title: str
    # A retry with the same key and title gets the chat created the first time.
    idempotency_key: str | None = None
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class CreateChatResult(ChatCreated):
    """The chat created, and whether this call only replayed an earlier one's result."""

    # Not part of equality: a replay is the same chat, delivered again.
    replayed: bool = field(default=False, compare=False)
    # A read that brings it back sees this chat, even from a replica (infrastructure/
    # consistency.py); None on SQLite.
    consistency_token: str | None = field(default=None, compare=False)


class CreateChatHandler:
    """Creates a chat; a user who creates one is its owner. A service's chat has no members
    until it adds some."""

    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: CreateChat) -> CreateChatResult:
        title = normalize_title(command.title)
        key = validate_idempotency_key(command.idempotency_key)
        with self._uow() as uow:
            created = uow.once(
                command.principal,
                "create_chat",
                key,
                {"title": title},
                CreateChatResult,
                lambda: self._create(uow, title, command.principal),
                result_chat=lambda created: created.chat_id,
            )
            uow.commit()
            return replace(created, consistency_token=uow.consistency_token())

    def _create(self, uow: UnitOfWork, title: str, principal: Principal) -> CreateChatResult:
        created_at = self._clock()
        chat_id = uow.connection.execute(
            INSERT_CHAT, {"title": title, "created_at": created_at}
        ).scalar_one()
        uow.record(ChatCreated(chat_id=chat_id, title=title, created_at=created_at))
        if principal.user_id is not None:
            owner = MemberAdded(chat_id, principal.user_id, "owner", created_at)
            uow.connection.execute(
                INSERT_MEMBER,
                {
                    "chat_id": chat_id,
                    "user_id": owner.user_id,
                    "role": "owner",
                    "added_at": created_at,
                },
            )
            uow.record(owner)
        return CreateChatResult(chat_id, title, created_at)
