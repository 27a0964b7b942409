"""The metadata every table of the schema is declared on, and the typed way to reach a table.

Alembic generates the migrations from, and checks them against, this metadata.
"""

from sqlalchemy import Table, inspect
from sqlmodel import SQLModel

# Set here, before any module declares a table class, so every constraint gets a stable name
# whichever of tables.py and read_models.py is imported first.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def core_table(model: type[SQLModel]) -> Table:
    """The Core table a SQLModel table class declares, which the statements are built on.

    SQLModel leaves `__table__` untyped; the class's mapper holds the same table, typed.
    """
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table
