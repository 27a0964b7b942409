"""Reading and forging the API's cursors (tests only: clients treat cursors as opaque)."""

import base64
import json
from typing import Any


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64json(payload: Any) -> str:
    return b64(json.dumps(payload).encode())


def decode_cursor(cursor: str) -> Any:
    """What a cursor holds today."""
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
