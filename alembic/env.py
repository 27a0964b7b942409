"""Alembic environment: migrates the database named by sqlalchemy.url or DATABASE_URL."""

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from alembic import context
from infrastructure import read_models, tables  # noqa: F401  (declare every table on SQLModel.metadata)
from infrastructure.settings import Settings

target_metadata = SQLModel.metadata


def database_url() -> str:
    return context.config.get_main_option("sqlalchemy.url") or Settings().database_url


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


def run_migrations_online() -> None:
    # Foreign keys stay off on SQLite here: batch migrations copy tables, and a cascade
    # would empty the children of every table copied.
    engine = create_engine(database_url())
    with engine.connect() as connection:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
