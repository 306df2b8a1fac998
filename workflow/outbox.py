"""The transactional outbox: the events a unit of work sends out, written in its transaction.

An event exists if and only if the change it reports committed: :func:`append` runs on the
unit's connection before it commits, so a rollback takes the events with it and a commit
(even one followed by ``kill -9``) keeps them.

Each event carries a per-account ``sequence``, strictly increasing and gap-free, allocated
so that commit order is sequence order within an account: a reader that resumed after *n*
never misses an event committed later with a number at or below *n*.

- PostgreSQL: the account's row in ``outbox_sequence`` is raised by an upsert in the unit's
  transaction. Its row lock makes a second writer of the account wait until the first commits
  (or rolls back), so the smaller sequence is always visible first. The upsert is the unit's
  last statements, so the lock is held only for the commit.
- SQLite: writers are serialised by ``BEGIN IMMEDIATE``; the next number is the account's
  highest in ``outbox_event`` plus one, taken by the INSERT itself (one statement).

The row is slim (account, sequence, type, ticket id, version, actor, role, instant): it is
written on every fire. The ticket it carries - as the API shows it after the change - is
rebuilt when read, by replaying the ticket's append-only history up to ``version`` (the unit's
final version), which is exactly the ticket the unit committed. :func:`ticket_json` gives the
shape of ``api.schemas.TicketPublic`` without knowing about the API, serialised by
pydantic-core as the API is (a test keeps the two equal).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from .models import OutboxEvent, OutboxSequence
from .prepared import Prepared
from .records import TicketView

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = [
    "TYPES",
    "Outgoing",
    "StoredEvent",
    "append",
    "bounds",
    "prune",
    "read_after",
    "ticket_json",
]

OE = OutboxEvent.__table__  # type: ignore[attr-defined]
OS = OutboxSequence.__table__  # type: ignore[attr-defined]

TYPES = {
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
"""The outgoing type of each history event kind."""
KINDS = {t: k for k, t in TYPES.items()}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to append: its history kind, when, and who caused it."""

    kind: str
    at: datetime
    actor: str | None
    role: str | None
    visibility: str | None = None
    """Its note's visibility, when it carries a note."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the outbox, with the ticket after its change."""

    sequence: int
    type: str
    ticket_id: int
    """The ticket's id as the API shows it (its number within the account)."""
    version: int
    actor: str | None
    role: str | None
    at: datetime
    ticket_json: str
    """The ticket (``TicketPublic``'s JSON) right after the change, as text."""
    visibility: str | None = None
    requester_id: int | None = None
    """The ticket's requester (who among the customers may see the event)."""

    @property
    def kind(self) -> str:
        """The history kind behind the type (``ticket.updated`` stands for two: either)."""
        return KINDS[self.type]

    @property
    def ticket(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.ticket_json)
        return parsed

    def payload(self) -> str:
        """The event as JSON text, as the stream's ``data:`` and a webhook's body carry it."""
        return (
            f'{{"sequence":{self.sequence},"type":{json.dumps(self.type)},'
            f'"at":{json.dumps(self.at.isoformat().replace("+00:00", "Z"))},'
            f'"actor":{json.dumps(self.actor)},"role":{json.dumps(self.role)},'
            f'"ticket":{self.ticket_json}}}'
        )


_EVENT_KEYS = tuple(c.key for c in OE.columns)
_INSERT = Prepared(sa.insert(OE), keys=_EVENT_KEYS)
_PG_UPSERT = postgresql.insert(OS)
_RAISE = Prepared(
    _PG_UPSERT.on_conflict_do_update(
        index_elements=["account_id"], set_={"last": OS.c.last + _PG_UPSERT.excluded.last}
    ).returning(OS.c.last),
    keys=("account_id", "last"),
)
"""PostgreSQL: ``last += n`` for the account (its row made on its first event); the new last."""
_NEXT_KEYS = [k for k in _EVENT_KEYS if k != "sequence"]
_INSERT_NEXT = Prepared(
    sa.insert(OE).from_select(
        [*_NEXT_KEYS, "sequence"],
        sa.select(
            *(sa.bindparam(k, type_=OE.c[k].type) for k in _NEXT_KEYS),
            sa.func.coalesce(sa.func.max(OE.c.sequence), sa.literal_column("0"))
            + sa.literal_column("1"),
        ).where(OE.c.account_id == sa.bindparam("b_account")),
    )
)
"""SQLite: insert one event numbered one past the account's highest."""


def append(
    conn: Connection,
    account_id: int,
    ticket_id: int,
    version: int,
    events: Sequence[Outgoing],
) -> None:
    """Append ``events`` (in order) for ``ticket_id``, now at ``version``, inside the caller's
    transaction. Call it as the unit's last statement (on PostgreSQL it holds the account's
    counter until commit)."""
    if not events:
        return
    rows = [
        {
            "account_id": account_id,
            "type": TYPES[e.kind],
            "ticket_id": ticket_id,
            "version": version,
            "actor": e.actor,
            "role": e.role,
            "visibility": e.visibility,
            "at": e.at,
        }
        for e in events
    ]
    if conn.dialect.name == "postgresql":
        row = _RAISE.first(conn, {"account_id": account_id, "last": len(rows)})
        assert row is not None
        first = int(row["last"]) - len(rows) + 1
        _INSERT.execute_many(conn, [{**r, "sequence": first + i} for i, r in enumerate(rows)])
    else:
        for r in rows:
            _INSERT_NEXT.execute(conn, {**r, "b_account": account_id})


_AFTER = (
    sa.select(OE)
    .where(OE.c.account_id == sa.bindparam("aid"), OE.c.sequence > sa.bindparam("after"))
    .order_by(OE.c.sequence)
    .limit(sa.bindparam("n"))
)


def read_after(tf: Tierflow, account: str, after: int, *, limit: int = 500) -> list[StoredEvent]:
    """The account's events with a sequence above ``after``, oldest first, at most ``limit``,
    each with the ticket as it was right after its change."""
    account_id = tf.account_id(account)
    out: list[StoredEvent] = []
    with tf.db.read() as conn:
        rows = conn.execute(_AFTER, {"aid": account_id, "after": after, "n": limit}).mappings()
        tickets: dict[tuple[int, int], tuple[str, int | None, int]] = {}  # a unit's events: one
        for r in rows:
            key = (r["ticket_id"], r["version"])
            known = tickets.get(key)
            if known is None:
                view = tf._view_at(conn, account, *key)
                known = tickets[key] = (
                    pydantic_core.to_json(ticket_json(view)).decode(),
                    view.requester_id,
                    view.id,
                )
            out.append(
                StoredEvent(
                    sequence=r["sequence"],
                    type=r["type"],
                    ticket_id=known[2],
                    version=r["version"],
                    actor=r["actor"],
                    role=r["role"],
                    at=r["at"],
                    ticket_json=known[0],
                    visibility=r["visibility"],
                    requester_id=known[1],
                )
            )
    return out


def bounds(tf: Tierflow, account: str) -> tuple[int, int]:
    """(lowest, highest) sequence the account's outbox still holds; (0, 0) when empty."""
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        low, high = conn.execute(
            sa.select(sa.func.min(OE.c.sequence), sa.func.max(OE.c.sequence)).where(
                OE.c.account_id == account_id
            )
        ).one()
    return (int(low or 0), int(high or 0))


def prune(tf: Tierflow, *, before: datetime) -> int:
    """Delete events older than ``before`` (the retention); returns how many. Each account's
    newest event stays (SQLite numbers the next one from it), so numbers are never reused."""
    newer = OE.alias("newer")
    newest = (
        sa.select(sa.func.max(newer.c.sequence))
        .where(newer.c.account_id == OE.c.account_id)
        .scalar_subquery()
    )
    with tf.db.write() as conn:
        deleted = conn.execute(sa.delete(OE).where(OE.c.at < before, OE.c.sequence < newest))
        return int(deleted.rowcount)


def ticket_json(t: TicketView) -> dict[str, Any]:
    """``t`` in the shape of the API's ticket (``TicketPublic``), for ``pydantic_core.to_json``."""
    c = t.current  # (read directly: the view's attribute forwarding costs on the hot path)
    return {
        "id": t.id,
        "account": t.account,
        "kind": c.kind,
        "category": c.category,
        "subject": t.subject,
        "description": t.description,
        "channel": c.channel,
        "state": c.state,
        "level": c.level,
        "complexity": c.complexity,
        "urgency": c.urgency,
        "priority": c.priority,
        "outcome": c.outcome,
        "playbook_position": c.playbook_position,
        "customer": None
        if t.customer_name is None
        else {"name": t.customer_name, "email": t.customer_email},
        "requester_id": t.requester_id,
        "assignee_id": c.assignee_id,
        "version": c.version,
        "workflow": {"name": t.workflow, "version": t.workflow_version, "hash": t.definition_hash},
        "created_at": t.created_at,
        "received_at": c.received_at,
        "updated_at": t.updated_at,
        "sla": t.sla,
    }
