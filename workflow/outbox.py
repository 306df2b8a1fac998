"""The transactional outbox: the events a unit of work sends out, written in its transaction.

The outbox is the append-only history itself (``ticket_event``): every history row is an
outgoing event, numbered by its ``sequence`` column. :func:`append` writes the unit's history
rows, numbered, on the unit's connection before it commits, so a rollback takes the events
with it and a commit (even one followed by ``kill -9``) keeps them. No second table is written
per unit: the history's unique (account_id, sequence) index is also the account's index of
its history.

Each event carries a per-account ``sequence``, strictly increasing and gap-free, allocated
so that commit order is sequence order within an account: a reader that resumed after *n*
never misses an event committed later with a number at or below *n*.

- PostgreSQL: the account's row in ``outbox_sequence`` is raised by an upsert in the unit's
  transaction. Its row lock makes a second writer of the account wait until the first commits
  (or rolls back), so the smaller sequence is always visible first. Each history row's INSERT
  raises the row itself (the upsert is a CTE of the INSERT: one statement, one round trip),
  and the history rows are the unit's last statements, so the lock is held only for them
  and the commit.
- SQLite: writers are serialised by ``BEGIN IMMEDIATE``; each row's number is the account's
  highest plus one, taken by its INSERT (one statement, one seek in the unique index).

An event's ticket - as the API shows it after the change - is rebuilt when read, by replaying
the ticket's history up to ``unit_version`` (the unit's final version), which is exactly the
ticket the unit committed. :func:`ticket_json` gives the shape of ``api.schemas.TicketPublic``
without knowing about the API, serialised by pydantic-core as the API is (a test keeps the two
equal).

Retention: events are never deleted (they are the history). :func:`prune` moves the account's
floor in ``outbox_floor`` past the events older than the retention; :func:`bounds` starts
after it, so a reader asking to resume from an older number is told to resynchronise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from .models import Account, OutboxFloor, OutboxSequence, TicketEvent
from .prepared import Prepared
from .records import TicketView

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = [
    "TYPES",
    "StoredEvent",
    "append",
    "bounds",
    "highest",
    "prune",
    "read_after",
    "ticket_json",
]

E = TicketEvent.__table__  # type: ignore[attr-defined]
OS = OutboxSequence.__table__  # type: ignore[attr-defined]
OF = OutboxFloor.__table__  # type: ignore[attr-defined]
ACCOUNTS = Account.__table__  # type: ignore[attr-defined]

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


_EVENT_KEYS = tuple(c.key for c in E.columns if not c.primary_key)
INSERT = Prepared(sa.insert(E), keys=_EVENT_KEYS)
"""A history row as given (unnumbered: no outgoing event)."""
_NUMBERED = E.alias("numbered")
_NEXT_KEYS = [k for k in _EVENT_KEYS if k != "sequence"]
_PG_UPSERT = postgresql.insert(OS).values(
    account_id=sa.bindparam("account_id"), last=sa.literal_column("1")
)
_RAISED = (
    _PG_UPSERT.on_conflict_do_update(
        index_elements=["account_id"], set_={"last": OS.c.last + sa.literal_column("1")}
    )
    .returning(OS.c.last)
    .cte("raised")
)
_PG_INSERT_NEXT = Prepared(
    sa.insert(E).values(
        {
            **{k: sa.bindparam(k, type_=E.c[k].type) for k in _NEXT_KEYS},
            "sequence": sa.select(_RAISED.c.last).scalar_subquery(),
        }
    ),
    keys=_NEXT_KEYS,
)
"""PostgreSQL: raise the account's ``last`` by one (its row made on its first event) and
insert one history row numbered with it - one statement (``WITH raised AS (INSERT ... ON
CONFLICT ... DO UPDATE ... RETURNING last) INSERT INTO ticket_event ...``), so the row lock
that orders the account's writers is taken by the unit's last statement, in the same round
trip as its history row."""
_INSERT_NEXT = Prepared(
    sa.insert(E).values(
        {
            **{k: sa.bindparam(k, type_=E.c[k].type) for k in _NEXT_KEYS},
            "sequence": sa.select(
                sa.func.coalesce(sa.func.max(_NUMBERED.c.sequence), sa.literal_column("0"))
                + sa.literal_column("1")
            )
            .where(_NUMBERED.c.account_id == sa.bindparam("account_id"))
            .scalar_subquery(),
        }
    ),
    keys=_NEXT_KEYS,
)
"""SQLite: insert one history row numbered one past the account's highest."""


def append(conn: Connection, account_id: int, version: int, rows: list[dict[str, Any]]) -> None:
    """Insert the unit's history ``rows`` (in order; the ticket is at ``version`` after them),
    each numbered as the account's next outgoing event, inside the caller's transaction. Call
    it as the unit's last statement (on PostgreSQL it holds the account's counter until
    commit)."""
    if not rows:
        return
    for r in rows:
        r["unit_version"] = version
    if conn.dialect.name == "postgresql":
        _PG_INSERT_NEXT.execute_many(conn, rows)  # in order: each row one past the last
    else:
        _INSERT_NEXT.execute_many(conn, rows)


_AFTER = (
    sa.select(E, sa.case((E.c.note.is_(None), None), else_=E.c.visibility).label("sent_visibility"))
    .where(E.c.account_id == sa.bindparam("aid"), E.c.sequence > sa.bindparam("after"))
    .order_by(E.c.sequence)
    .limit(sa.bindparam("n"))
)
"""The account's events after a number, whole history rows (the batch's tickets are folded
from them); a note's visibility only for an event with a note."""


def read_after(tf: Tierflow, account: str, after: int, *, limit: int = 500) -> list[StoredEvent]:
    """The account's events with a sequence above ``after``, oldest first, at most ``limit``,
    each with the ticket as it was right after its change (the batch's tickets rebuilt
    together: ``Tierflow._views_at``)."""
    account_id = tf.account_id(account)
    out: list[StoredEvent] = []
    with tf.db.read() as conn:
        query = {"aid": account_id, "after": after, "n": limit}
        rows = conn.execute(_AFTER, query).mappings().all()
        views = tf._views_at(conn, account, rows)
    tickets: dict[tuple[int, int], tuple[str, int | None, int]] = {}  # a unit's events: one
    for r in rows:
        key = (r["ticket_id"], r["unit_version"])
        known = tickets.get(key)
        if known is None:
            view = views[key]
            known = tickets[key] = (
                pydantic_core.to_json(ticket_json(view)).decode(),
                view.requester_id,
                view.id,
            )
        out.append(
            StoredEvent(
                sequence=r["sequence"],
                type=TYPES[r["kind"]],
                ticket_id=known[2],
                version=r["unit_version"],
                actor=r["actor"],
                role=r["role"],
                at=r["at"],
                ticket_json=known[0],
                visibility=r["sent_visibility"],
                requester_id=known[1],
            )
        )
    return out


def highest(conn: Connection, account_id: int) -> int:
    """The account's newest event's sequence (0 before its first)."""
    high = conn.execute(_HIGHEST, {"aid": account_id}).scalar()
    return int(high or 0)


_HIGHEST = sa.select(sa.func.max(E.c.sequence)).where(E.c.account_id == sa.bindparam("aid"))
_LOWEST = sa.select(sa.func.min(E.c.sequence)).where(E.c.account_id == sa.bindparam("aid"))
_FLOOR = sa.select(OF.c.sequence).where(OF.c.account_id == sa.bindparam("aid"))


def bounds(tf: Tierflow, account: str) -> tuple[int, int]:
    """(lowest, highest) sequence the account's outbox still holds - the lowest within the
    retention; (0, 0) when it has none."""
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        high = highest(conn, account_id)
        if not high:
            return (0, 0)
        low = int(conn.execute(_LOWEST, {"aid": account_id}).scalar() or 0)
        floor = int(conn.execute(_FLOOR, {"aid": account_id}).scalar() or 0)
    return (max(low, floor + 1), high)


def prune(tf: Tierflow, *, before: datetime) -> int:
    """Move each account's floor past its events older than ``before`` (the retention);
    returns how many events it passed. The events stay (they are the history); each account's
    newest stays above the floor. Reads only the events since the last floor."""
    passed = 0
    with tf.db.write() as conn:
        floors = {r[0]: r[1] for r in conn.execute(sa.select(OF.c.account_id, OF.c.sequence))}
        for (account_id,) in conn.execute(sa.select(ACCOUNTS.c.id)).all():
            high = highest(conn, account_id)
            low = int(conn.execute(_LOWEST, {"aid": account_id}).scalar() or 0)
            if not high:
                continue
            floor = max(floors.get(account_id, 0), low - 1)
            kept = conn.execute(  # the first event since the floor within the retention
                sa.select(E.c.sequence)
                .where(E.c.account_id == account_id, E.c.sequence > floor, E.c.at >= before)
                .order_by(E.c.sequence)
                .limit(1)
            ).scalar()
            new = min(high - 1 if kept is None else int(kept) - 1, high - 1)
            if new <= floor:
                continue
            passed += new - floor
            if account_id in floors:
                conn.execute(
                    sa.update(OF).where(OF.c.account_id == account_id).values(sequence=new)
                )
            else:
                conn.execute(sa.insert(OF).values(account_id=account_id, sequence=new))
    return passed


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
