"""Errors the domain raises; the API maps each one to an HTTP status."""


class DomainError(Exception):
    """Base of every error a command or query raises on purpose."""


class NotFound(DomainError):
    """Something the command or query names does not exist."""


class ChatNotFound(NotFound):
    def __init__(self, chat_id: int) -> None:
        super().__init__(f"chat {chat_id} not found")
        self.chat_id = chat_id


class MessageNotFound(NotFound):
    def __init__(self, chat_id: int, message_id: int) -> None:
        super().__init__(f"message {message_id} not found in chat {chat_id}")
        self.chat_id = chat_id
        self.message_id = message_id


class MemberNotFound(NotFound):
    def __init__(self, chat_id: int, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is not a member of chat {chat_id}")
        self.chat_id = chat_id
        self.user_id = user_id


class InvalidInput(DomainError, ValueError):
    """A value breaks a rule of the domain.

    It is also a ValueError so that pydantic validators can raise it and
    FastAPI reports it in its usual 422 shape.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class IdempotencyKeyReused(DomainError):
    """An idempotency key sent again with a different request than the one it was first used for."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.key = key


class ResumePointAhead(DomainError):
    """A reader asked for what follows a seq the chat has not reached: a resume point from
    another chat, or made up. Answering with nothing would hide the client's mistake."""

    def __init__(self, chat_id: int, after: int, last_seq: int) -> None:
        super().__init__(
            f"chat {chat_id} has no message with seq {after}: its last seq is {last_seq}"
        )
        self.chat_id = chat_id
        self.after = after
        self.last_seq = last_seq


class NotAMember(ChatNotFound):
    """A user asked about a chat they are not a member of: to them it does not exist, so it
    is the same error, word for word, as a missing chat. Only an event stream tells the two
    apart, to end a removed member's stream with `member.removed`."""


class Forbidden(DomainError):
    """A member tried what only an owner may do."""


class LastOwner(DomainError):
    """The change would leave a chat that has members without an owner."""

    def __init__(self, chat_id: int) -> None:
        super().__init__(f"chat {chat_id} would have no owner left: make another owner first")
        self.chat_id = chat_id


class Unauthenticated(Exception):
    """No credential, or one that is malformed, expired, forged or revoked: a 401. Its
    message says what was wrong, never the credential itself."""
