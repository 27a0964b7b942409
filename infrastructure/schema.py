"""Whether the database's schema is the one this code expects, and errors that say it is not."""

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from infrastructure import migrations

NOT_MIGRATED = "database schema is not at the latest migration: run `chatapi migrate`"

# PostgreSQL's SQLSTATEs for a table or a column that is not there.
UNDEFINED_TABLE = "42P01"
UNDEFINED_COLUMN = "42703"
# SQLite has no codes for these, only messages.
SQLITE_MISSING = ("no such table", "no such column", "has no column named")


class SchemaNotMigrated(Exception):
    def __init__(self) -> None:
        super().__init__("the schema is missing or not at the latest migration")


class SchemaCheck:
    """Refuses work until the schema is at the latest migration; then costs one flag test.

    A schema that is missing or behind need not make every statement fail (a GET may read
    only columns that an older revision has too), so it is checked before serving, not
    inferred from errors. Once at the latest migration it is not checked again: a schema
    changed under a running service shows as an undefined table or column, and `forget`
    makes the next requests check again.
    """

    def __init__(self) -> None:
        self.verified = False

    def ensure(self, engine: Engine) -> None:
        if self.verified:
            return
        if not migrations.is_at_head(engine):
            raise SchemaNotMigrated
        self.verified = True

    def forget(self) -> None:
        self.verified = False


def is_missing_schema_error(exc: DBAPIError) -> bool:
    """Whether the database failed a statement because a table or column does not exist."""
    code = getattr(exc.orig, "pgcode", None)
    if code is not None:
        return code in (UNDEFINED_TABLE, UNDEFINED_COLUMN)
    message = str(exc.orig)
    return any(fragment in message for fragment in SQLITE_MISSING)
