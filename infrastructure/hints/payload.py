"""What a hint says on the wire: the sending process's token and the chat ids that changed.

"3f9a0c1d2e4b5a69 7,12,40": one NOTIFY payload. PostgreSQL refuses payloads of 8,000 bytes or
more, so a long list of ids is split over several payloads.
"""

from collections.abc import Iterable
from dataclasses import dataclass

CHANNEL = "chatapi_hints"
MAX_PAYLOAD_BYTES = 7_000


@dataclass(frozen=True, slots=True)
class Hint:
    token: str
    chat_ids: frozenset[int]


def encode(token: str, chat_ids: Iterable[int]) -> list[str]:
    """The payloads that carry these chat ids, each under MAX_PAYLOAD_BYTES."""
    payloads: list[str] = []
    ids: list[str] = []
    size = len(token) + 1
    for chat_id in sorted(set(chat_ids)):
        text = str(chat_id)
        if ids and size + len(text) + 1 > MAX_PAYLOAD_BYTES:
            payloads.append(f"{token} {','.join(ids)}")
            ids, size = [], len(token) + 1
        ids.append(text)
        size += len(text) + 1
    if ids:
        payloads.append(f"{token} {','.join(ids)}")
    return payloads


def is_from(payload: str, token: str) -> bool:
    """Whether the process of this token sent the payload: told without reading its ids."""
    return payload.startswith(token) and payload.startswith(" ", len(token))


def decode(payload: str) -> Hint | None:
    """The hint in a payload, or None for one this package did not write."""
    token, _, ids = payload.partition(" ")
    try:
        return Hint(token, frozenset(int(chat_id) for chat_id in ids.split(",")))
    except ValueError:
        return None
