"""The transactional outbox: the events a unit of work sends out, written in its transaction.

An event exists if and only if the change it reports committed: :func:`append` runs on the
unit's connection before it commits, so a rollback takes the events with it and a commit
(even one followed by ``kill -9``) keeps them.

Each event carries a per-account ``sequence``, strictly increasing and gap-free. It comes from
the account's row in ``outbox_sequence``, raised by an upsert in the same transaction: on
PostgreSQL the row lock makes a second writer of the account wait until the first commits (or
rolls back), so an event with a smaller sequence is always visible before one with a larger,
and a reader that resumed after *n* never misses an event committed later with a number at or
below *n*. On SQLite writers are serialised by ``BEGIN IMMEDIATE`` anyway. The upsert is the
unit's last statement, so the lock is held only for the commit.

The event's ``ticket`` is the ticket as the API shows it after the change (:func:`ticket_json`
produces the JSON of ``api.schemas.TicketPublic`` without knowing about the API; a test keeps
the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .models import OutboxEvent, OutboxSequence
from .prepared import Prepared
from .records import TicketView

__all__ = ["TYPES", "Outgoing", "StoredEvent", "append", "read_after", "ticket_json"]

OE = OutboxEvent.__table__  # type: ignore[attr-defined]
OS = OutboxSequence.__table__  # type: ignore[attr-defined]

TYPES = {
    "created": "ticket.created",
    "transition": "ticket.transitioned",
    "field_update": "ticket.updated",
    "playbook_step": "ticket.updated",
    "response": "ticket.responded",
    "sla_breached": "ticket.sla_breached",
}
"""The outgoing type of each history event kind."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to append: its history kind, when, and who caused it."""

    kind: str
    at: datetime
    actor: str | None
    role: str | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the outbox."""

    sequence: int
    type: str
    ticket_id: int
    actor: str | None
    role: str | None
    at: datetime
    ticket: dict[str, Any]


_EVENT_KEYS = tuple(c.key for c in OE.columns if not c.primary_key)
_INSERT = Prepared(sa.insert(OE), keys=_EVENT_KEYS)
_allocators: dict[str, Prepared] = {}


def _allocator(dialect: str) -> Prepared:
    """``last += n`` for the account (the row is created on its first event); returns the new
    ``last``."""
    stmt = _allocators.get(dialect)
    if stmt is None:
        insert: Any = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
        base = insert(OS)
        upsert = base.on_conflict_do_update(
            index_elements=["account_id"], set_={"last": OS.c.last + base.excluded.last}
        ).returning(OS.c.last)
        stmt = _allocators[dialect] = Prepared(upsert, keys=("account_id", "last"))
    return stmt


def append(
    conn: Connection,
    account_id: int,
    ticket_id: int,
    events: Sequence[Outgoing],
    ticket: Mapping[str, Any],
) -> list[int]:
    """Append ``events`` (in order) for ``ticket_id`` inside the caller's transaction; returns
    their sequences. Call it as the unit's last statement (it holds the account's counter)."""
    if not events:
        return []
    row = _allocator(conn.dialect.name).first(conn, {"account_id": account_id, "last": len(events)})
    assert row is not None
    last = int(row["last"])
    first = last - len(events) + 1
    body = dict(ticket)
    _INSERT.execute_many(
        conn,
        [
            {
                "account_id": account_id,
                "sequence": first + i,
                "type": TYPES[e.kind],
                "ticket_id": ticket_id,
                "actor": e.actor,
                "role": e.role,
                "at": e.at,
                "ticket": body,
            }
            for i, e in enumerate(events)
        ],
    )
    return list(range(first, last + 1))


def read_after(
    conn: Connection, account_id: int, after: int, *, limit: int = 500
) -> list[StoredEvent]:
    """The account's events with a sequence above ``after``, oldest first, at most ``limit``."""
    rows = conn.execute(
        sa.select(OE)
        .where(OE.c.account_id == account_id, OE.c.sequence > after)
        .order_by(OE.c.sequence)
        .limit(limit)
    ).mappings()
    return [
        StoredEvent(
            sequence=r["sequence"],
            type=r["type"],
            ticket_id=r["ticket_id"],
            actor=r["actor"],
            role=r["role"],
            at=r["at"],
            ticket=r["ticket"],
        )
        for r in rows
    ]


def _instant(d: datetime | None) -> str | None:
    """An instant as the API writes it (pydantic's JSON: UTC as ``Z``)."""
    if d is None:
        return None
    s = d.isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def ticket_json(t: TicketView) -> dict[str, Any]:
    """``t`` as the API's ticket JSON (the shape of ``TicketPublic``)."""
    return {
        "id": t.id,
        "account": t.account,
        "kind": t.kind,
        "category": t.category,
        "subject": t.subject,
        "description": t.description,
        "channel": t.channel,
        "state": t.state,
        "level": t.level,
        "complexity": t.complexity,
        "urgency": t.urgency,
        "priority": t.priority,
        "outcome": t.outcome,
        "playbook_position": t.playbook_position,
        "customer": None
        if t.customer_name is None
        else {"name": t.customer_name, "email": t.customer_email},
        "version": t.version,
        "workflow": {"name": t.workflow, "version": t.workflow_version, "hash": t.definition_hash},
        "created_at": _instant(t.created_at),
        "received_at": _instant(t.received_at),
        "updated_at": _instant(t.updated_at),
        "sla": {
            name: {k: _instant(v) if isinstance(v, datetime) else v for k, v in clock.items()}
            for name, clock in t.sla.items()
        },
    }
