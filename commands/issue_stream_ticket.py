from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from commands.access import caller_role, lock_chat
from domain.errors import ChatNotFound
from domain.principals import Principal
from domain.rules import is_possible_id
from infrastructure import stream_tickets
from infrastructure.clock import Clock
from infrastructure.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class IssueStreamTicket:
    """A single-use ticket to open the chat's event stream as this caller (for browsers)."""

    chat_id: int
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class StreamTicket:
    ticket: str
    expires_at: datetime


class IssueStreamTicketHandler:
    """For whoever may follow the chat: its members and services."""

    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, command: IssueStreamTicket) -> StreamTicket:
        chat_id = command.chat_id
        if not is_possible_id(chat_id):
            raise ChatNotFound(chat_id)
        with self._uow() as uow:
            lock_chat(uow, chat_id, lock=False)  # ChatNotFound for a missing chat
            caller_role(uow, command.principal, chat_id)  # ChatNotFound for a non-member
            ticket, expires_at = stream_tickets.issue(
                uow.connection, chat_id, command.principal, self._clock()
            )
            uow.commit()
            return StreamTicket(ticket, expires_at)
