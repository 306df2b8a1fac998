"""per-account user numbers

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 04:00:00

``account_user.number``: a user's number within its account (what the API calls the user's
id), unique per account; ``account.last_user_number``: the number its newest user got.
Existing users are numbered 1, 2, 3, ... per account in the order of their (global) ids. A
ticket's ``requester_id`` and ``assignee_id``, and the ``assignee_id`` its ``assigned``
events changed, name users of the ticket's account: they are rewritten from the user's
primary key to its number (tokens keep pointing at the primary key).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from workflow.migrations.numbering import add_numbers, drop_numbers

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TICKET_USERS = ("requester_id", "assignee_id")


def upgrade() -> None:
    add_numbers("account_user", "last_user_number", "uq_account_user_number")
    for column in _TICKET_USERS:
        op.execute(
            f"UPDATE ticket SET {column} = (SELECT number FROM account_user AS u"
            f" WHERE u.id = ticket.{column}) WHERE {column} IS NOT NULL"
        )
    number_of = {key: number for key, _account, number in _users()}
    _rewrite_assigned(lambda _account, key: number_of[key])


def downgrade() -> None:
    for column in _TICKET_USERS:
        op.execute(
            f"UPDATE ticket SET {column} = (SELECT id FROM account_user AS u"
            f" WHERE u.account_id = ticket.account_id AND u.number = ticket.{column})"
            f" WHERE {column} IS NOT NULL"
        )
    key_of = {(account, number): key for key, account, number in _users()}
    _rewrite_assigned(lambda account, number: key_of[(account, number)])
    drop_numbers("account_user", "last_user_number", "uq_account_user_number")


def _users() -> list[tuple[int, int, int]]:
    """(primary key, account, number) of every user."""
    rows = op.get_bind().execute(sa.text("SELECT id, account_id, number FROM account_user"))
    return [(int(r.id), int(r.account_id), int(r.number)) for r in rows]


def _rewrite_assigned(to: Callable[[int, int], int]) -> None:
    """Rewrite ``changes.assignee_id`` of every ``assigned`` event to ``to(account, value)``."""
    conn = op.get_bind()
    events = sa.table(
        "ticket_event",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("changes", sa.JSON),
    )
    rows = conn.execute(
        sa.select(events.c.id, events.c.account_id, events.c.changes).where(
            events.c.kind == "assigned"
        )
    ).all()
    for r in rows:
        changes: dict[str, Any] = dict(r.changes or {})
        if changes.get("assignee_id") is None:
            continue
        changes["assignee_id"] = to(int(r.account_id), int(changes["assignee_id"]))
        conn.execute(sa.update(events).where(events.c.id == r.id).values(changes=changes))
