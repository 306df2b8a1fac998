"""assignment

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 00:30:00

``ticket.assignee_id``: the user working on a ticket (None: in the pool). Existing tickets
start in the pool, as their histories (no ``assigned`` event) say.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN / CREATE INDEX: no table rebuilt on SQLite
    op.add_column("ticket", sa.Column("assignee_id", sa.Integer(), nullable=True))
    op.create_index(
        "ix_ticket_account_assignee", "ticket", ["account_id", "assignee_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ticket_account_assignee", table_name="ticket")
    op.drop_column("ticket", "assignee_id")
