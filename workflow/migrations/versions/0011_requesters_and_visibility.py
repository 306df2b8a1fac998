"""requesters see their own; public and internal notes

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 00:00:00

``ticket.requester_id`` (the person who asked), ``ticket_event.visibility`` and
``outbox_event.visibility``. Existing data carried forward: notes become internal, except staff
replies (``response`` events), which the customer was sent; a ticket's requester is the
customer user who created it (migration 0009 made a user of each customer token, named as the
token), else the account's user with the ticket's customer e-mail, if there is one.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN / CREATE INDEX: nothing here rebuilds a table on SQLite (a rebuilt
    # ticket table would trip the foreign keys of its events)
    op.add_column("ticket", sa.Column("requester_id", sa.Integer(), nullable=True))
    op.create_index(
        "ix_ticket_account_requester", "ticket", ["account_id", "requester_id", "id"], unique=False
    )
    op.add_column(
        "ticket_event",
        sa.Column(
            "visibility",
            sqlmodel.sql.sqltypes.AutoString(length=10),
            nullable=False,
            server_default="internal",
        ),
    )
    op.add_column(
        "outbox_event",
        sa.Column("visibility", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    )

    conn = op.get_bind()
    events = sa.table(
        "ticket_event",
        sa.column("ticket_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("actor", sa.String),
        sa.column("role", sa.String),
        sa.column("visibility", sa.String),
    )
    conn.execute(sa.update(events).where(events.c.kind == "response").values(visibility="public"))
    tickets = sa.table(
        "ticket",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("customer_email", sa.String),
        sa.column("requester_id", sa.Integer),
    )
    users = sa.table(
        "account_user",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("email", sa.String),
    )
    by_creator = (
        sa.select(sa.func.min(users.c.id))
        .select_from(users.join(events, events.c.actor == users.c.name))
        .where(
            users.c.account_id == tickets.c.account_id,
            events.c.ticket_id == tickets.c.id,
            events.c.kind == "created",
            events.c.role == "customer",
        )
        .scalar_subquery()
    )
    by_email = (
        sa.select(sa.func.min(users.c.id))
        .where(
            users.c.account_id == tickets.c.account_id,
            users.c.email == sa.func.lower(tickets.c.customer_email),
        )
        .scalar_subquery()
    )
    conn.execute(sa.update(tickets).values(requester_id=sa.func.coalesce(by_creator, by_email)))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35, PostgreSQL): no table rebuilt
    op.drop_column("outbox_event", "visibility")
    op.drop_column("ticket_event", "visibility")
    op.drop_index("ix_ticket_account_requester", table_name="ticket")
    op.drop_column("ticket", "requester_id")
