from collections.abc import Callable
from dataclasses import dataclass

from commands.clock import Clock
from domain.events import ChatCreated
from domain.rules import normalize_title, validate_idempotency_key
from infrastructure.idempotency import IdempotencyKeys
from infrastructure.tables import ChatRecord
from infrastructure.unit_of_work import UnitOfWork

SCOPE = "create_chat"


@dataclass(frozen=True, slots=True)
class CreateChat:
    title: str
    # A retry with the same key and title gets the chat created the first time.
    idempotency_key: str | None = None


class CreateChatHandler:
    def __init__(
        self, uow: Callable[[], UnitOfWork], clock: Clock, idempotency_keys: IdempotencyKeys
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._keys = idempotency_keys

    def __call__(self, command: CreateChat) -> ChatCreated:
        title = normalize_title(command.title)
        key = command.idempotency_key
        if key is not None:
            validate_idempotency_key(key)
        with self._uow() as uow:
            if key is not None:
                request = {"title": title}
                replayed = self._keys.replay(uow.session, SCOPE, key, request, ChatCreated)
                if replayed is not None:
                    return replayed
            chat = ChatRecord(title=title, created_at=self._clock())
            uow.session.add(chat)
            uow.session.flush()
            assert chat.id is not None  # assigned by the INSERT
            event = ChatCreated(chat_id=chat.id, title=chat.title, created_at=chat.created_at)
            uow.record(event)
            if key is not None:
                self._keys.remember(uow.session, SCOPE, key, event)
            uow.commit()
        return event
