"""The read side: one ticket, its history, filtered pages, the work queue, what is possible.

Functions over a :class:`workflow.Tierflow` (its methods of the same names call these); every
query is scoped by account, and by what the ``viewer`` may see (:mod:`workflow.access`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .access import EVERYTHING, Viewer, shown_events, ticket_clauses
from .errors import InputError
from .machine import Option, machine_for
from .records import E, EventView, T, TicketView, decode_cursor, encode_cursor, state_of

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["NOBODY", "Unassigned", "events", "explain", "get_ticket", "list_tickets", "queue"]

MAX_PAGE = 500
MAX_SEARCH = 100
"""Longest ``q`` (subject search) :func:`list_tickets` accepts."""


def get_ticket(
    tf: Tierflow, *, account: str, ticket_id: int, viewer: Viewer = EVERYTHING
) -> TicketView:
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        row = tf._load(conn, account_id, ticket_id, viewer)
    return tf._view(
        account, row, tf.registry.by_hash(row["definition_hash"]), state_of(row), tf.clock()
    )


def events(
    tf: Tierflow, *, account: str, ticket_id: int, viewer: Viewer = EVERYTHING
) -> list[EventView]:
    """The ticket's history, oldest first (as ``viewer`` may read it)."""
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        key = tf._load(conn, account_id, ticket_id, viewer)["id"]
        rows = conn.execute(sa.select(E).where(E.c.ticket_id == key).order_by(E.c.seq)).mappings()
        return shown_events(
            viewer,
            (
                EventView(
                    r["seq"],
                    r["kind"],
                    r["trigger"],
                    r["from_state"],
                    r["to_state"],
                    r["actor"],
                    r["role"],
                    r["note"],
                    r["data"] or {},
                    r["changes"] or {},
                    r["at"],
                    r["visibility"],
                )
                for r in rows
            ),
        )


class Unassigned:
    """The ``assignee`` filter that keeps tickets nobody is assigned (in the pool)."""


NOBODY = Unassigned()


def _assignee(assignee: int | Unassigned | None) -> list[Any]:
    """``assignee``: None, no filter; :data:`NOBODY`, the pool; a user id, theirs."""
    if assignee is None:
        return []
    if isinstance(assignee, Unassigned):
        return [T.c.assignee_id.is_(None)]
    return [T.c.assignee_id == assignee]


FILTERS = ("state", "level", "priority", "category")
"""The ticket filters whose values come from the definitions."""


def known_values(tf: Tierflow, name: str) -> list[str]:
    """Every value a ticket filter ``name`` (state, level, priority, category) can match: the
    union over the definitions loaded, in their order."""
    values: list[str] = []
    for d in tf.registry.loaded():
        spec = d.spec
        if name == "state":
            found = list(spec.states)
        elif name == "level":
            found = [s.level for s in spec.states.values() if s.level is not None]
        elif name == "priority":
            found = list(spec.priorities)
        else:
            found = [c for kind in spec.kinds.values() for c in kind.categories]
        values += found
    return list(dict.fromkeys(values))


def _require_known(tf: Tierflow, name: str, value: str | None) -> None:
    if value is None:
        return
    known = known_values(tf, name)
    if value not in known:
        raise InputError(name, f"unknown filter {value!r} (known: {', '.join(known)})")


def list_tickets(
    tf: Tierflow,
    *,
    account: str,
    state: str | None = None,
    level: str | None = None,
    priority: str | None = None,
    category: str | None = None,
    sla: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    q: str | None = None,
    assignee: int | Unassigned | None = None,
    viewer: Viewer = EVERYTHING,
) -> tuple[list[TicketView], str | None]:
    """One page, oldest ticket first; ``cursor`` is the previous page's ``next_cursor``.

    ``q``: only tickets whose subject contains this text, case-insensitively (``%`` and ``_``
    match themselves; at most :data:`MAX_SEARCH` characters).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InputError("limit", f"must be between 1 and {MAX_PAGE}")
    if q is not None and len(q) > MAX_SEARCH:
        raise InputError("q", f"at most {MAX_SEARCH} characters (got {len(q)})")
    if sla not in (None, "breached", "at_risk"):
        raise InputError("sla", f"unknown filter {sla!r} (known: breached, at_risk)")
    filters = {"state": state, "level": level, "priority": priority, "category": category}
    for name, value in filters.items():
        _require_known(tf, name, value)
    account_id = tf.account_id(account)
    now = tf.clock()
    where = [T.c.account_id == account_id, *ticket_clauses(viewer), *_assignee(assignee)]
    where += [T.c[col] == value for col, value in filters.items() if value is not None]
    if cursor is not None:  # the last number shown; an account's ids run in number order
        shown = (
            sa.select(T.c.id)
            .where(T.c.account_id == account_id, T.c.number <= decode_cursor(cursor))
            .order_by(T.c.number.desc())
            .limit(1)
        )
        where.append(T.c.id > sa.func.coalesce(shown.scalar_subquery(), 0))
    if q and q.strip():
        text = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(T.c.subject.ilike(f"%{text}%", escape="\\"))
    if sla == "breached":
        # two small index range scans instead of one OR over the whole account: breaches
        # already recorded, and clocks past due that no scan has recorded yet
        recorded = sa.select(T.c.id).where(*where, T.c.sla_breached_at.is_not(None))
        past_due = sa.select(T.c.id).where(*where, T.c.sla_due_at <= now)
        with tf.db.read() as conn:
            ids: set[int] = set()
            for part in (recorded, past_due):
                ids.update(conn.execute(part.order_by(T.c.id).limit(limit + 1)).scalars())
        where = [T.c.id.in_(sorted(ids)[: limit + 1])]
    elif sla == "at_risk":
        # running clocks past their risk instant, and paused ones with too little left
        # (those have no due instant); never a breached one
        where += [
            T.c.sla_breached_at.is_(None),
            T.c.sla_risk_at <= now,
            sa.or_(T.c.sla_due_at > now, T.c.sla_due_at.is_(None)),
        ]
    rows = _views(tf, account, sa.select(T).where(*where).order_by(T.c.id).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more and rows else None)


def queue(
    tf: Tierflow,
    *,
    account: str,
    level: str | None = None,
    limit: int = 50,
    assignee: int | Unassigned | None = None,
    viewer: Viewer = EVERYTHING,
) -> list[TicketView]:
    """Open tickets by priority (highest first, in the definition's order; none last); within
    a priority breached tickets first, most overdue first (by the instant of the breach: the
    recorded one, else the due instant already past), then by due instant (none last), then by
    age (``received_at``), then id."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError("limit", f"must be between 1 and {MAX_PAGE}")
    _require_known(tf, "level", level)
    account_id = tf.account_id(account)
    now = tf.clock()
    priorities: list[str | None] = []
    for d in tf.registry.loaded():
        priorities += [p for p in d.spec.priorities if p not in priorities]
    base = [
        T.c.account_id == account_id,
        T.c.resolved_at.is_(None),
        *ticket_clauses(viewer),
        *_assignee(assignee),
    ]
    if level is not None:
        base.append(T.c.level == level)
    clear = T.c.sla_breached_at.is_(None)
    # Range scans of the two partial queue indexes per priority, in rank order, until the page
    # is full: an ORDER BY over a CASE could never use an index.
    ids: list[int] = []
    with tf.db.read() as conn:

        def scan(*where: Any, order: Any, n: int) -> list[Any]:
            q = sa.select(T.c.id, order, T.c.received_at, T.c.number).where(*base, *where)
            return list(conn.execute(q.order_by(order, T.c.received_at, T.c.id).limit(n)))

        for p in [*priorities, None]:
            n = limit - len(ids)
            if n <= 0:
                break
            prio = T.c.priority.is_(None) if p is None else T.c.priority == p
            # breached: recorded (ix_ticket_open_breached) or past due, not yet recorded
            recorded = scan(prio, T.c.sla_breached_at.is_not(None), order=T.c.sla_breached_at, n=n)
            past_due = scan(prio, clear, T.c.sla_due_at <= now, order=T.c.sla_due_at, n=n)
            breached = sorted([*recorded, *past_due], key=lambda r: (r[1], r[2], r[0]))
            ids += [r[3] for r in breached[:n]]
            for due in (T.c.sla_due_at > now, T.c.sla_due_at.is_(None)):
                n = limit - len(ids)
                if n > 0:
                    ids += [r[3] for r in scan(prio, clear, due, order=T.c.sla_due_at, n=n)]
    if not ids:
        return []
    order = {number: i for i, number in enumerate(ids)}  # (ticket numbers: the views' ids)
    views = _views(
        tf, account, sa.select(T).where(T.c.account_id == account_id, T.c.number.in_(ids))
    )
    return sorted(views, key=lambda v: order[v.id])


def explain(
    tf: Tierflow, *, account: str, ticket_id: int, role: str, viewer: Viewer = EVERYTHING
) -> list[Option]:
    """Every trigger defined from the ticket's state, allowed or blocked with reasons."""
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        row = tf._load(conn, account_id, ticket_id, viewer)
    d = tf.registry.by_hash(row["definition_hash"])
    return machine_for(d).explain(state_of(row), role, tf.clock())


def _views(tf: Tierflow, account: str, q: Any) -> list[TicketView]:
    now = tf.clock()
    with tf.db.read() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    return [
        tf._view(account, r, tf.registry.by_hash(r["definition_hash"]), state_of(r), now)
        for r in rows
    ]
