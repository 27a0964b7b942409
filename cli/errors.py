"""The failures a command reports instead of a traceback, in one line each."""

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Unreachable, refusing, or timed out: the driver's first line says which.
DATABASE_ERRORS = (DBAPIError, PoolTimeout)


def first_line(exc: Exception) -> str:
    """What the driver said, without SQLAlchemy's statement and background link."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


class UnsupportedConfiguration(Exception):
    """Settings that are each valid but cannot be served together."""
