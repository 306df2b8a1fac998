"""transactional outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 21:20:00

Outgoing events (``outbox_event``) and each account's last sequence (``outbox_sequence``).
The outbox starts empty: changes committed before this revision sent no events.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import workflow.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_sequence",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "outbox_event",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("at", workflow.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("account_id", "sequence"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("outbox_event")
    op.drop_table("outbox_sequence")
