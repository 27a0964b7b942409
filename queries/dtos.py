"""The DTOs that more than one query returns."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class MessageDTO:
    id: int
    chat_id: int
    seq: int
    text: str
    created_at: datetime
