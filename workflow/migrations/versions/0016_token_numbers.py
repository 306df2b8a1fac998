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

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "account",
        sa.Column("last_token_number", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "api_token", sa.Column("number", sa.Integer(), nullable=False, server_default="0")
    )
    # (PARTITION BY puts the platform's tokens, account NULL, in one partition of their own)
    op.execute(
        "UPDATE api_token SET number = numbered.n FROM ("
        " SELECT id, ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY id) AS n"
        " FROM api_token"
        ") AS numbered WHERE api_token.id = numbered.id"
    )
    op.execute(
        "UPDATE account SET last_token_number = COALESCE("
        "(SELECT MAX(number) FROM api_token WHERE api_token.account_id = account.id), 0)"
    )
    if op.get_bind().dialect.name != "sqlite":  # (SQLite would rebuild the table for it)
        op.alter_column("api_token", "number", server_default=None)
    op.create_index(
        "uq_api_token_account_number", "api_token", ["account_id", "number"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_api_token_account_number", table_name="api_token")
    op.drop_column("api_token", "number")
    op.drop_column("account", "last_token_number")
