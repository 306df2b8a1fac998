"""per-account token numbers

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 04:15:00

``api_token.number``: a token's number within its account (the platform's tokens, with no
account, are numbered among themselves): what the API calls the token's id;
``account.last_token_number``: the number its newest token got. Existing tokens are numbered
1, 2, 3, ... per account in the order of their (global) ids.
"""

from __future__ import annotations

from workflow.migrations.numbering import add_numbers, drop_numbers

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_numbers("api_token", "last_token_number", "uq_api_token_account_number")


def downgrade() -> None:
    drop_numbers("api_token", "last_token_number", "uq_api_token_account_number")
