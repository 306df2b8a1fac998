"""queue: breached tickets first

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 21:05:00

The work queue lists, within a priority, breached tickets first (most overdue first), then by
due instant, then age. ``ix_ticket_open_queue`` now covers only open tickets without a breach
and ``ix_ticket_open_breached`` the open tickets with one, ordered by the breach instant.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OPEN = "resolved_at IS NULL"
_OPEN_NOT_BREACHED = "resolved_at IS NULL AND sla_breached_at IS NULL"
_OPEN_BREACHED = "resolved_at IS NULL AND sla_breached_at IS NOT NULL"


def _where(text: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(text), "postgresql_where": sa.text(text)}


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_open_queue", **_where(_OPEN))
        batch_op.create_index(
            "ix_ticket_open_queue",
            ["account_id", "priority", "sla_due_at", "received_at", "id"],
            unique=False,
            **_where(_OPEN_NOT_BREACHED),
        )
        batch_op.create_index(
            "ix_ticket_open_breached",
            ["account_id", "priority", "sla_breached_at", "received_at", "id"],
            unique=False,
            **_where(_OPEN_BREACHED),
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_open_breached", **_where(_OPEN_BREACHED))
        batch_op.drop_index("ix_ticket_open_queue", **_where(_OPEN_NOT_BREACHED))
        batch_op.create_index(
            "ix_ticket_open_queue",
            ["account_id", "priority", "sla_due_at", "received_at", "id"],
            unique=False,
            **_where(_OPEN),
        )
