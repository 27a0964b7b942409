"""JSON written straight from a query's rows, byte for byte what the response models of
api/schemas.py make of the DTOs (pydantic's `model_dump_json`): for the HTTP path's hottest
reads, which skip the DTOs and pydantic's validation and serialisation. Tests prove each
document equal to its model's JSON over many generated chats (tests/integration/
test_chat_document.py, test_documents.py)."""

from datetime import UTC, datetime
from json.encoder import encode_basestring

WHOLE_SECONDS, FRACTION_END = 22, 29  # lengths of PostgreSQL's text of a time in UTC


def json_time(value: datetime | str | None) -> str:
    """A time as pydantic writes an aware datetime: `"2026-11-22T14:10:49.829140Z"`, the
    fraction left out when it is zero. The driver gives PostgreSQL's as aware datetimes, or
    on the loop's connections (infrastructure/loop_database.py) as text in UTC,
    '2026-11-22 14:10:49.82914+00' (the fraction without its trailing zeros); SQLite's as
    SQLAlchemy stored them: '2026-11-22 14:10:49.829140', in UTC."""
    if value is None:
        return "null"
    if isinstance(value, str):
        if value.endswith("+00"):  # PostgreSQL's text, in UTC
            # 'YYYY-MM-DD HH:MM:SS+00' is 22 characters; with a fraction of 1 to 6 digits,
            # 24 to 29: padded to 6 (a message's every time goes through here: kept cheap).
            padding = "0" * (FRACTION_END - len(value)) if len(value) > WHOLE_SECONDS else ""
            return f'"{value[:10]}T{value[11:-3]}{padding}Z"'
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    return f'"{value.isoformat()[:-6]}Z"'  # without "+00:00"


def json_string(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def message_json(
    chat_id: int, message_id: int, seq: int, text: str, at: datetime | str, author: str | None
) -> str:
    """A message as MessageResponse writes it."""
    return (
        f'{{"id":{message_id},"chat_id":{chat_id},"seq":{seq},"text":{encode_basestring(text)},'
        f'"created_at":{json_time(at)},"author":{json_string(author)}}}'
    )
