"""refold SLA clocks stored with whole seconds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 21:10:00

Clocks now keep business time to the microsecond, a target reached is a breach, a lowered
target breaches at the change and paused clocks can be at risk. Tickets stored before carry
whole seconds (``elapsed_s``); their SLA columns are re-derived from their histories (which
stay the truth) and the per-state counts rebuilt, so ``tierflow check`` stays clean.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from workflow.integrity import refold_sla

    refold_sla(op.get_bind())


def downgrade() -> None:
    pass  # nothing to undo: clocks still carry a whole-second elapsed_s for older code
