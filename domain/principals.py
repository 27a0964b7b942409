"""Who is asking: every command and query runs for a Principal, and its handler decides what
that principal may do, whichever entry point (HTTP, the CLI, a script) built it."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from domain.errors import InvalidInput

USER_ID_MAX_LENGTH = 128

Kind = Literal["user", "service", "local"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A user (by the id its application gave it), a service (by its API key's id), or the
    local caller: a script, the CLI, or any request while AUTH_MODE=none."""

    kind: Kind
    id: str
    # When the credential it came with stops being good (a user token's `exp`); None: never.
    expires_at: datetime | None = None

    @property
    def is_service(self) -> bool:
        """Services and the local caller may do everything, on every chat."""
        return self.kind != "user"

    @property
    def user_id(self) -> str | None:
        return self.id if self.kind == "user" else None

    def is_same_caller(self, other: "Principal") -> bool:
        """The same user or service, whichever of its credentials each came with."""
        return (self.kind, self.id) == (other.kind, other.id)

    @property
    def scope(self) -> str:
        """What keeps this caller's idempotency keys apart from everyone else's."""
        return self.kind if self.kind == "local" else f"{self.kind}:{self.id}"


LOCAL = Principal("local", "local")


def validate_user_id(value: str, field: str = "user_id") -> str:
    """A user's id as its application names it: 1..128 characters, kept exactly."""
    if not isinstance(value, str) or not 1 <= len(value) <= USER_ID_MAX_LENGTH:
        raise InvalidInput(field, f"{field} is 1..{USER_ID_MAX_LENGTH} characters")
    if "\x00" in value or not value.strip():
        raise InvalidInput(field, f"{field} must not be blank or contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, f"{field} must be valid Unicode text") from None
    return value


def user(user_id: str, expires_at: datetime | None = None) -> Principal:
    return Principal("user", validate_user_id(user_id), expires_at)


def service(key_id: str) -> Principal:
    return Principal("service", key_id)
