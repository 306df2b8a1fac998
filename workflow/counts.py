"""Tickets per state, maintained: every unit of work that moves a ticket between states (or
records its first SLA breach) adjusts ``state_count`` in the same transaction.

``deltas`` says what a change does to the counts; ``apply_deltas`` writes it with one upsert
statement (built once per dialect); ``read`` sums the shards; ``recount`` is what the counts
must be, from the tickets themselves (``tierflow check`` compares the two).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .history import TicketState
from .models import StateCount, Ticket
from .prepared import Prepared

__all__ = ["SHARDS", "apply_deltas", "deltas", "read", "recount"]

SHARDS = 8
SC = StateCount.__table__  # type: ignore[attr-defined]
T = Ticket.__table__  # type: ignore[attr-defined]
_KEY = ["account_id", "workflow", "state", "shard"]

Delta = tuple[str, int, int]  # state, tickets, breached


def deltas(old: TicketState | None, new: TicketState) -> list[Delta]:
    """The change to the counts when a ticket goes from ``old`` (None: created) to ``new``."""
    was = None if old is None else (old.state, int(old.sla.breached_at is not None))
    now = (new.state, int(new.sla.breached_at is not None))
    if was == now:
        return []
    out = [(now[0], 1, now[1])]
    if was is not None:
        out.insert(0, (was[0], -1, -was[1]))
    return out


_upserts: dict[str, Prepared] = {}
_ROW_KEYS = tuple(c.key for c in SC.columns)


def _upsert(dialect: str) -> Prepared:
    stmt = _upserts.get(dialect)
    if stmt is None:
        insert: Any = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
        base = insert(SC)
        upsert = base.on_conflict_do_update(
            index_elements=_KEY,
            set_={
                "tickets": SC.c.tickets + base.excluded.tickets,
                "breached": SC.c.breached + base.excluded.breached,
            },
        )
        stmt = _upserts[dialect] = Prepared(upsert, keys=_ROW_KEYS)
    return stmt


def apply_deltas(
    conn: Connection, account_id: int, workflow: str, ticket_id: int, changes: list[Delta]
) -> None:
    if not changes:
        return
    shard = ticket_id % SHARDS
    # rows in one global order (by state), so two transactions never lock two count rows in
    # opposite orders (a deadlock on PostgreSQL)
    rows = [
        {
            "account_id": account_id,
            "workflow": workflow,
            "state": state,
            "shard": shard,
            "tickets": n,
            "breached": b,
        }
        for state, n, b in sorted(changes)
    ]
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        _upsert(dialect).execute_many(conn, rows)
        return
    for r in rows:  # any other backend: update, else insert
        key = [SC.c[k] == r[k] for k in _KEY]
        done = conn.execute(
            sa.update(SC)
            .where(*key)
            .values(tickets=SC.c.tickets + r["tickets"], breached=SC.c.breached + r["breached"])
        )
        if done.rowcount == 0:
            conn.execute(sa.insert(SC), r)


def read(conn: Connection, account_id: int, workflow: str) -> dict[str, tuple[int, int]]:
    """(tickets, recorded breaches) per state, shards summed; states with none are absent."""
    rows = conn.execute(
        sa.select(SC.c.state, sa.func.sum(SC.c.tickets), sa.func.sum(SC.c.breached))
        .where(SC.c.account_id == account_id, SC.c.workflow == workflow)
        .group_by(SC.c.state)
    ).all()
    return {s: (int(n), int(b)) for s, n, b in rows if n}


def recount(conn: Connection) -> dict[tuple[int, str, str], tuple[int, int]]:
    """What every (account, workflow, state) count must be, counted from the tickets."""
    breached = sa.case((T.c.sla_breached_at.is_not(None), 1), else_=0)
    rows = conn.execute(
        sa.select(
            T.c.account_id, T.c.workflow, T.c.state, sa.func.count(), sa.func.sum(breached)
        ).group_by(T.c.account_id, T.c.workflow, T.c.state)
    ).all()
    return {(a, w, s): (int(n), int(b or 0)) for a, w, s, n, b in rows}


def stored(conn: Connection) -> dict[tuple[int, str, str], tuple[int, int]]:
    rows = conn.execute(
        sa.select(
            SC.c.account_id,
            SC.c.workflow,
            SC.c.state,
            sa.func.sum(SC.c.tickets),
            sa.func.sum(SC.c.breached),
        ).group_by(SC.c.account_id, SC.c.workflow, SC.c.state)
    ).all()
    return {(a, w, s): (int(n), int(b)) for a, w, s, n, b in rows if n or b}
