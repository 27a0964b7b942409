"""The domain rules alone: no database, no HTTP."""

import pytest

from domain.errors import InvalidInput
from domain.rules import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    MAX_ID,
    MAX_LIMIT,
    TEXT_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    is_possible_id,
    normalize_title,
    validate_idempotency_key,
    validate_limit,
    validate_text,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Weekend plans \n", "Weekend plans"),
        ("x", "x"),
        ("\t" + "a" * TITLE_MAX_LENGTH + "  ", "a" * TITLE_MAX_LENGTH),
        ("😀" * TITLE_MAX_LENGTH, "😀" * TITLE_MAX_LENGTH),
    ],
)
def test_title_is_trimmed_then_kept(raw: str, expected: str) -> None:
    assert normalize_title(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "\n\t\u3000", "a" * (TITLE_MAX_LENGTH + 1), "a\x00b", "\ud800"]
)
def test_title_rejected(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_title(raw)
    assert caught.value.field == "title"


@pytest.mark.parametrize(
    "raw", ["x", "  spaced  ", "line\nbreak\n", "😀" * TEXT_MAX_LENGTH, "a" * TEXT_MAX_LENGTH]
)
def test_text_is_kept_exactly(raw: str) -> None:
    assert validate_text(raw) == raw


@pytest.mark.parametrize(
    "raw", ["", " ", "\n\t ", "a" * (TEXT_MAX_LENGTH + 1), "nul\x00", "half \udfff pair"]
)
def test_text_rejected(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_text(raw)
    assert caught.value.field == "text"


@pytest.mark.parametrize("limit", [1, 20, MAX_LIMIT])
def test_limit_accepted(limit: int) -> None:
    assert validate_limit(limit) == limit


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, True])
def test_limit_rejected(limit: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_limit(limit)
    assert caught.value.field == "limit"


@pytest.mark.parametrize(
    ("value", "possible"), [(1, True), (MAX_ID, True), (0, False), (-5, False), (MAX_ID + 1, False)]
)
def test_possible_ids(value: int, possible: bool) -> None:
    assert is_possible_id(value) is possible


@pytest.mark.parametrize(
    "key", [None, "k", "5f0c9a9e-8d4b-4a53-9a43-1c2de0a4c7b1", "~" * IDEMPOTENCY_KEY_MAX_LENGTH]
)
def test_idempotency_key_accepted(key: str | None) -> None:
    assert validate_idempotency_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "x" * (IDEMPOTENCY_KEY_MAX_LENGTH + 1), "two words", "é", "key\n", "\x7f"]
)
def test_idempotency_key_rejected(key: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_idempotency_key(key)
    assert caught.value.field == "idempotency_key"
