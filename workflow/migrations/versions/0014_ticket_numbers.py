"""per-account ticket numbers

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 03:40:00

``ticket.number``: a ticket's number within its account (what the API calls its id), unique
per account; ``account.last_ticket_number``: the number its newest ticket got. Existing
tickets are numbered 1, 2, 3, ... per account in the order of their (global) ids, so an
account's tickets keep their order; each account's counter continues after its last ticket.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN / UPDATE / CREATE INDEX: no table rebuilt on SQLite
    op.add_column(
        "account",
        sa.Column("last_ticket_number", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("ticket", sa.Column("number", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE ticket SET number = numbered.n FROM ("
        " SELECT id, ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY id) AS n FROM ticket"
        ") AS numbered WHERE ticket.id = numbered.id"
    )
    op.execute(
        "UPDATE account SET last_ticket_number = COALESCE("
        "(SELECT MAX(number) FROM ticket WHERE ticket.account_id = account.id), 0)"
    )
    if op.get_bind().dialect.name != "sqlite":  # (SQLite would rebuild the table for it)
        # every new ticket names its number: a forgotten one is an error, never a 0
        op.alter_column("ticket", "number", server_default=None)
    op.create_index("uq_ticket_account_number", "ticket", ["account_id", "number"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_ticket_account_number", table_name="ticket")
    op.drop_column("ticket", "number")
    op.drop_column("account", "last_ticket_number")
