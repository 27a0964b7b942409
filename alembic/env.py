"""Alembic environment: migrates the database named by sqlalchemy.url or DATABASE_URL.

Run as `alembic upgrade head`, a bad setting or a database that cannot be reached is one
line (`FAILED: ...`, exit 1), never a traceback, and never the URL: it holds a password.
"""

from typing import NoReturn

from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from alembic import context
from cli.errors import first_line
from infrastructure import read_models, tables  # noqa: F401  (declare every table on SQLModel.metadata)
from infrastructure.settings import Settings, problems

target_metadata = SQLModel.metadata


def database_url() -> str:
    # Set by infrastructure/migrations.py (`chatapi migrate`, the tests), already validated.
    configured = context.config.get_main_option("sqlalchemy.url")
    if configured:
        return configured
    try:
        return Settings().database_url
    except ValidationError as exc:
        fail(f"invalid configuration: {problems(exc)}")


def fail(message: str) -> NoReturn:
    """Stop with `message` alone: alembic's command line prints a CommandError as one line."""
    raise CommandError(message) from None


def from_the_command_line() -> bool:
    """Whether alembic's own command line runs this (it gives the config its options), rather
    than `chatapi migrate`, which reports a database error in its own words."""
    return context.config.cmd_opts is not None


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def connect(url: str) -> Connection:
    # Foreign keys stay off on SQLite here: batch migrations copy tables, and a cascade
    # would empty the children of every table copied.
    engine = create_engine(url)
    try:
        return engine.connect()
    except DBAPIError as exc:
        engine.dispose()
        if from_the_command_line():
            fail(f"database error: {first_line(exc)}")
        raise


def run_migrations_online() -> None:
    connection = connect(database_url())
    try:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.close()
        connection.engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
