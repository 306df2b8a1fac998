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

from workflow.migrations.numbering import add_numbers, drop_numbers

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_numbers("ticket", "last_ticket_number", "uq_ticket_account_number")


def downgrade() -> None:
    drop_numbers("ticket", "last_ticket_number", "uq_ticket_account_number")
