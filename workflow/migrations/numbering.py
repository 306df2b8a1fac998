"""Numbers per account (migrations 0014 to 0017): the rows of ``table`` get a ``number``
1, 2, 3, ... within their account, in the order of their (global) ids, and ``account`` a
counter holding the number its newest row got, so new rows continue after it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def add_numbers(table: str, counter: str, index: str) -> None:
    """Plain ADD COLUMN / UPDATE / CREATE INDEX: no table rebuilt on SQLite. Rows with no
    account (``account_id`` NULL) are numbered among themselves."""
    op.add_column("account", sa.Column(counter, sa.Integer(), nullable=False, server_default="0"))
    op.add_column(table, sa.Column("number", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        f"UPDATE {table} SET number = numbered.n FROM ("
        f" SELECT id, ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY id) AS n FROM {table}"
        f") AS numbered WHERE {table}.id = numbered.id"
    )
    op.execute(
        f"UPDATE account SET {counter} = COALESCE("
        f"(SELECT MAX(number) FROM {table} WHERE {table}.account_id = account.id), 0)"
    )
    if op.get_bind().dialect.name != "sqlite":  # (SQLite would rebuild the table for it)
        # every new row names its number: a forgotten one is an error, never a 0
        op.alter_column(table, "number", server_default=None)
    op.create_index(index, table, ["account_id", "number"], unique=True)


def drop_numbers(table: str, counter: str, index: str) -> None:
    op.drop_index(index, table_name=table)
    op.drop_column(table, "number")
    op.drop_column("account", counter)
