"""account calendar

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 00:45:00

``account.calendar``: an account's business calendar (resolved holiday dates included); NULL,
as for every existing account, means the workflow definition's calendar.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account", sa.Column("calendar", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("account", "calendar")
