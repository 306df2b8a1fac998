"""per-account webhook subscription numbers

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27 05:20:00

``webhook_subscription.number``: a subscription's number within its account, what the API calls
its id and what its deliveries' ``webhook-id`` (``msg_<number>_<sequence>``) is made from;
``account.last_webhook_number``: the number its newest subscription got. Existing subscriptions
are numbered 1, 2, 3, ... per account in the order of their (global) ids.
"""

from __future__ import annotations

from workflow.migrations.numbering import add_numbers, drop_numbers

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_numbers(
        "webhook_subscription", "last_webhook_number", "uq_webhook_subscription_account_number"
    )


def downgrade() -> None:
    drop_numbers(
        "webhook_subscription", "last_webhook_number", "uq_webhook_subscription_account_number"
    )
