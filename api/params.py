"""How integers in paths and query strings must be written."""

import re
from typing import Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

DECIMAL_INTEGER = re.compile(r"-?[0-9]+")


def _decimal_integer(value: Any) -> Any:
    # pydantic's lax parsing also reads " 3", "\u00a03", "+3", "3.0" and "3_0" as integers;
    # OpenAPI's integer is the plain decimal spelling, so those are refused as "abc" is.
    if isinstance(value, str) and not DECIMAL_INTEGER.fullmatch(value):
        raise PydanticCustomError(
            "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        )
    return value


DecimalInteger = BeforeValidator(_decimal_integer)
