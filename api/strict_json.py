"""JSON as RFC 8259 defines it: no `NaN`, `Infinity` or `-Infinity`, no number beyond a double.

Python's json reads all of those (a number too large as inf), and they would reach pydantic,
or be ignored in an unknown field. Refused here, they are a syntax error at their position,
which FastAPI answers as any other: a 422 `json_invalid` at `["body", position]`.
"""

import json
import math
import re
from typing import Any

# A string, a constant, or a number, as Python's json scans them (json.scanner.NUMBER_RE).
TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'
    r"|(?P<constant>-?Infinity|NaN)"
    r"|(?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)",
    re.DOTALL,
)


class _Refused(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse_constant(constant: str) -> Any:
    raise _Refused(f"{constant} is not JSON")


def _finite_float(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise _Refused("a number too large for a double is not JSON")
    return value


def _is_refused(match: re.Match[str]) -> bool:
    if match["constant"]:
        return True
    number = match["number"]
    # json reads a number with a fraction or an exponent as a float, any other as an int
    # (which no size overflows).
    is_float = bool(number) and any(mark in number for mark in ".eE")
    return is_float and not math.isfinite(float(number))


def _position_of_refused(text: str) -> int:
    """Where the first refused token starts. The text parsed without error up to it, so
    scanning it from the start meets strings whole, and a token's look-alike inside a string
    (`"NaN"`) is never taken for one."""
    refused = (match.start() for match in TOKEN.finditer(text) if _is_refused(match))
    return next(refused, 0)  # 0, the body as a whole, should this scan and json's disagree


def loads(text: str) -> Any:
    """The JSON value of `text`; json.JSONDecodeError if it is not standard JSON."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _Refused as refused:
        raise json.JSONDecodeError(refused.reason, text, _position_of_refused(text)) from None
