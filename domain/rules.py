"""The rules every chat and message obeys, whoever sends them."""

import re
from typing import cast, get_args

from domain.errors import InvalidInput
from domain.events import Role

TITLE_MAX_LENGTH = 200
TEXT_MAX_LENGTH = 5000
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Identifiers are 64-bit database keys: anything outside cannot name a chat.
MAX_ID = 2**63 - 1
IDEMPOTENCY_KEY_MAX_LENGTH = 255
# Visible ASCII, no spaces: a UUID, a ULID, or any client token like them. Written as the
# API's JSON Schema states it; matched whole, since Python's `$` would allow a final newline.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]+$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


# Control characters other than tab, newline and carriage return: C0 (NUL among them, which
# PostgreSQL text cannot hold) and C1. They draw nothing, each costs six bytes escaped in JSON
# (5,000 of them made a 3 MB page), and C1's CSI (U+009B) drives terminals.
CONTROL_CHARACTERS = "\x00-\x08\x0b\x0c\x0e-\x1f\x80-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def _check_storable(field: str, value: str) -> None:
    if _CONTROL.search(value):
        raise InvalidInput(
            field,
            f"{field} must not contain control characters (other than tab, newline and "
            "carriage return)",
        )
    # Lone surrogates cannot be encoded as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, f"{field} must be valid Unicode text") from None


def normalize_title(title: str) -> str:
    """Trim the title, then require 1..200 characters."""
    trimmed = title.strip()
    if not trimmed:
        raise InvalidInput("title", "title must not be blank")
    if len(trimmed) > TITLE_MAX_LENGTH:
        raise InvalidInput(
            "title", f"title must be at most {TITLE_MAX_LENGTH} characters after trimming"
        )
    _check_storable("title", trimmed)
    return trimmed


def validate_text(text: str) -> str:
    """Keep the text exactly as sent, but refuse blank or oversized ones."""
    if not text.strip():
        raise InvalidInput("text", "text must not be empty or whitespace only")
    if len(text) > TEXT_MAX_LENGTH:
        raise InvalidInput("text", f"text must be at most {TEXT_MAX_LENGTH} characters")
    _check_storable("text", text)
    return text


def validate_limit(limit: int) -> int:
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def is_possible_id(value: int) -> bool:
    """Whether a value could be the id of a stored row at all."""
    return 1 <= value <= MAX_ID


def validate_idempotency_key(key: str | None) -> str | None:
    """No key, or 1..255 visible ASCII characters."""
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        raise InvalidInput(
            "idempotency_key",
            f"an idempotency key is 1..{IDEMPOTENCY_KEY_MAX_LENGTH} characters",
        )
    if _IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise InvalidInput(
            "idempotency_key", "an idempotency key is visible ASCII characters, without spaces"
        )
    return key


ROLES: tuple[str, ...] = get_args(Role)


def validate_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidInput("role", "role is owner or member")
    return cast(Role, role)
