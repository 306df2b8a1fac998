"""the history is the outbox

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-27 07:50:00

Outgoing events are numbered on the history rows themselves (``ticket_event.sequence``, with
``unit_version``: the ticket's version after the unit that wrote the row), so a unit of work
writes no second table: the unique index (account_id, sequence) replaces the history's
account index. The events of ``outbox_event`` are carried over with their sequences: a unit's
*n* events (one ``version``, numbered in order) are its last *n* history rows. History rows
whose events were pruned, or written before revision 0007, stay unnumbered. The retention is a
floor per account (``outbox_floor``): the events stay, the stream resumes only above it.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import workflow.models

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_CARRY = """
UPDATE ticket_event SET sequence = m.sequence, unit_version = m.version
FROM (
    SELECT ticket_id, sequence, version,
           version - count(*) OVER (PARTITION BY ticket_id, version)
           + row_number() OVER (PARTITION BY ticket_id, version ORDER BY sequence) AS seq
    FROM outbox_event
) AS m
WHERE ticket_event.ticket_id = m.ticket_id AND ticket_event.seq = m.seq
"""

_TYPES = {
    "created": "ticket.created",
    "transition": "ticket.transitioned",
    "field_update": "ticket.updated",
    "playbook_step": "ticket.updated",
    "response": "ticket.responded",
    "comment": "ticket.commented",
    "assigned": "ticket.assigned",
    "sla_breached": "ticket.sla_breached",
    "migrated": "ticket.migrated",
}
"""``workflow.outbox.TYPES`` as of this revision."""


def upgrade() -> None:
    op.add_column("ticket_event", sa.Column("sequence", sa.Integer(), nullable=True))
    op.add_column("ticket_event", sa.Column("unit_version", sa.Integer(), nullable=True))
    op.execute(_CARRY)
    op.drop_index("ix_ticket_event_account_id", table_name="ticket_event")
    op.create_index(
        "uq_ticket_event_account_sequence",
        "ticket_event",
        ["account_id", "sequence"],
        unique=True,
    )
    op.create_table(
        "outbox_floor",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.drop_table("outbox_event")


def downgrade() -> None:
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
        sa.Column("visibility", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("account_id", "sequence"),
        sqlite_with_rowid=False,
    )
    kinds = " ".join(f"WHEN '{k}' THEN '{t}'" for k, t in _TYPES.items())
    op.execute(
        "INSERT INTO outbox_event (account_id, sequence, type, ticket_id, version, actor, role,"
        " at, visibility)"
        f" SELECT account_id, sequence, CASE kind {kinds} END, ticket_id, unit_version, actor,"
        " role, at, CASE WHEN note IS NULL THEN NULL ELSE visibility END"
        " FROM ticket_event WHERE sequence IS NOT NULL"
    )
    op.drop_table("outbox_floor")
    op.drop_index("uq_ticket_event_account_sequence", table_name="ticket_event")
    op.create_index("ix_ticket_event_account_id", "ticket_event", ["account_id"], unique=False)
    with op.batch_alter_table("ticket_event") as batch_op:
        batch_op.drop_column("unit_version")
        batch_op.drop_column("sequence")
