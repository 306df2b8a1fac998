"""published definitions

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 23:50:00

``definition_version.seq`` orders publications (the newest of a name is its latest), numbered
for the rows already there by their ``created_at``; ``account_workflow`` holds the version of a
workflow an account's new tickets get.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import workflow.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (a batch copy of the table would trip the tickets' foreign keys)
    op.add_column(
        "definition_version", sa.Column("seq", sa.Integer(), nullable=False, server_default="0")
    )
    dv = sa.table(
        "definition_version",
        sa.column("hash", sa.String()),
        sa.column("created_at", workflow.models.UTCDateTime()),
        sa.column("seq", sa.Integer()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(dv.c.hash).order_by(dv.c.created_at, dv.c.hash)).all()
    for n, row in enumerate(rows, start=1):
        conn.execute(sa.update(dv).where(dv.c.hash == row.hash).values(seq=n))
    op.create_index(
        "ix_definition_version_name_seq", "definition_version", ["name", "seq"], unique=False
    )
    op.create_table(
        "account_workflow",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("workflow", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("definition_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("updated_at", workflow.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["definition_hash"], ["definition_version.hash"]),
        sa.PrimaryKeyConstraint("account_id", "workflow"),
    )


def downgrade() -> None:
    op.drop_table("account_workflow")
    op.drop_index("ix_definition_version_name_seq", table_name="definition_version")
    op.drop_column("definition_version", "seq")
