"""people and tokens that die

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 23:50:00

An account's people (``account_user``: name, e-mail, roles); a token belongs to a person or
is an integration's, and may expire or be revoked. Existing data carried forward: every token
of an account that is not an integration's becomes the token of a new user named as the token
was, holding the token's role.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import workflow.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("org_wide", sa.Boolean(), nullable=False),
        sa.Column("created_at", workflow.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "email", name="uq_account_user_email"),
    )
    with op.batch_alter_table("account_user", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_user_account_id"), ["account_id"], unique=False
        )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("expires_at", workflow.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("revoked_at", workflow.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_used_at", workflow.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_api_token_user_id_account_user", "account_user", ["user_id"], ["id"]
        )

    # existing tokens become people's tokens (integrations' stay integrations')
    conn = op.get_bind()
    tokens = sa.table(
        "api_token",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("role", sa.String),
        sa.column("name", sa.String),
        sa.column("created_at", workflow.models.UTCDateTime(timezone=True)),
    )
    users = sa.table(
        "account_user",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("email", sa.String),
        sa.column("roles", sa.JSON),
        sa.column("org_wide", sa.Boolean),
        sa.column("created_at", workflow.models.UTCDateTime(timezone=True)),
    )
    rows = conn.execute(
        sa.select(
            tokens.c.id, tokens.c.account_id, tokens.c.role, tokens.c.name, tokens.c.created_at
        )
        .where(tokens.c.account_id.is_not(None), tokens.c.role != "integration")
        .order_by(tokens.c.id)
    ).all()
    for row in rows:
        user_id = conn.execute(
            sa.insert(users).returning(users.c.id),
            {
                "account_id": row.account_id,
                "name": row.name,
                "email": None,
                "roles": [row.role],
                "org_wide": False,
                "created_at": row.created_at,
            },
        ).scalar_one()
        conn.execute(sa.update(tokens).where(tokens.c.id == row.id).values(user_id=user_id))


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_constraint("fk_api_token_user_id_account_user", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("user_id")
    with op.batch_alter_table("account_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_user_account_id"))
    op.drop_table("account_user")
