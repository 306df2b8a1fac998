"""Per-state statistics of one account's tickets: the numbers behind the live workflow view.

For every state of a workflow: how many tickets are in it now, how many of those have a breached
SLA clock, and the median time tickets spent there. Counts come from one ``GROUP BY`` over the
ticket table; the medians from the history (the time between a ticket's consecutive
state-entering events), bounded to the account's most recent :data:`MEDIAN_WINDOW` such events
so the cost does not grow with the account's age.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from . import counts
from .models import Ticket, TicketEvent

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["MEDIAN_WINDOW", "StateStat", "state_stats"]

MEDIAN_WINDOW = 2_000
"""How many of the account's most recent state-entering events the medians are computed over."""

_T: Any = Ticket.__table__  # type: ignore[attr-defined]
_E: Any = TicketEvent.__table__  # type: ignore[attr-defined]
_ENTERING = ("created", "transition", "migrated")


@dataclass(frozen=True, slots=True)
class StateStat:
    count: int
    """Tickets in the state now."""
    breached: int
    """Of those, tickets with a breached SLA clock (recorded, or past due and not yet scanned)."""
    median_seconds: float | None
    """Median wall-clock time of the completed stays in the state; None without any."""
    samples: int = 0
    """How many completed stays the median is over."""


EMPTY = StateStat(0, 0, None, 0)


class _seconds(sa.sql.expression.FunctionElement[float]):
    """``later - earlier`` in seconds (to the millisecond), computed by the database."""

    type = sa.Float()
    inherit_cache = True
    name = "tierflow_seconds"


@compiles(_seconds)
def _seconds_other(element: Any, compiler: Any, **kw: Any) -> str:
    raise sa.exc.CompileError(f"no stay-length expression for {compiler.dialect.name}")


@compiles(_seconds, "sqlite")
def _seconds_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    earlier, later = (compiler.process(c, **kw) for c in element.clauses)
    return f"round((julianday({later}) - julianday({earlier})) * 86400.0, 3)"


@compiles(_seconds, "postgresql")
def _seconds_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    earlier, later = (compiler.process(c, **kw) for c in element.clauses)
    return f"round(EXTRACT(EPOCH FROM ({later} - {earlier}))::numeric, 3)"


def _recent(account_id: int, workflow: str, window: int) -> Any:
    """The account's ``window`` newest state-entering events of ``workflow`` (ticket, seq,
    to_state, at), as a subquery.

    Newest first is by outgoing sequence (commit order), then the rows written before the
    outbox numbered events (no sequence; all older than every numbered one) by id. The two
    parts are read separately because one ORDER BY over both (``sequence DESC NULLS LAST``)
    matches no index on PostgreSQL - a backward scan of (account_id, sequence) yields NULLs
    first - and made it sort the account's whole history; each part below reads an index
    range and stops after ``window`` rows (no unnumbered rows: an empty range)."""
    entering = (
        sa.select(_E.c.ticket_id, _E.c.seq, _E.c.to_state, _E.c.at, _E.c.sequence, _E.c.id)
        .join(_T, _T.c.id == _E.c.ticket_id)
        .where(
            _E.c.account_id == account_id,
            _T.c.workflow == workflow,
            _E.c.kind.in_(_ENTERING)
            # a migration that leaves the ticket in its state ends no stay (it did not leave)
            & ((_E.c.kind != "migrated") | (_E.c.to_state != _E.c.from_state)),
        )
    )
    numbered = (
        entering.where(_E.c.sequence.is_not(None))
        .order_by(_E.c.sequence.desc())
        .limit(window)
        .subquery()
    )
    unnumbered = (
        entering.where(_E.c.sequence.is_(None)).order_by(_E.c.id.desc()).limit(window).subquery()
    )
    both = sa.union_all(sa.select(numbered), sa.select(unnumbered)).subquery()
    return (
        sa.select(both.c.ticket_id, both.c.seq, both.c.to_state, both.c.at)
        .order_by(both.c.sequence.is_(None), both.c.sequence.desc(), both.c.id.desc())
        .limit(window)
        .subquery()
    )


def state_stats(
    tf: Tierflow, *, account: str, workflow: str, window: int = MEDIAN_WINDOW
) -> dict[str, StateStat]:
    """Statistics per state for the tickets of ``account`` that run ``workflow``.

    Every state of the workflow's current definition is present (zeros when empty), plus any
    state only older versions have that still holds tickets. A stay is *completed* when a later
    state-entering event (``created``, ``transition``, or a ``migrated`` event whose state map
    moved the ticket - one that left it in its state is not counted) of the same ticket ends
    it; the medians
    look at the ``window`` most recent state-entering events of the account only (the stays they
    start, if completed), so a long history costs no more than a short one. Breached means
    ``sla_breached_at`` is set or ``sla_due_at`` has passed at ``tf.clock()``; both the live
    counts and the breach test read indexed ticket columns.

    Raises :class:`workflow.NotFound` for an unknown account or workflow.
    """
    definition = tf.definition(workflow)
    account_id = tf.account_id(account)
    now = tf.clock()
    # clocks past due that no scan has recorded yet: few, and found through ix_ticket_account_due
    unrecorded_q = (
        sa.select(_T.c.state, sa.func.count())
        .where(
            _T.c.account_id == account_id,
            _T.c.sla_due_at <= now,
            _T.c.sla_breached_at.is_(None),
            _T.c.workflow == workflow,
        )
        .group_by(_T.c.state)
    )
    recent = _recent(account_id, workflow, window)
    left_at = sa.func.lead(recent.c.at, type_=recent.c.at.type).over(
        partition_by=recent.c.ticket_id, order_by=recent.c.seq
    )
    stays = (
        sa.select(recent.c.to_state, recent.c.at.label("entered"), left_at.label("left_at"))
        .where(recent.c.to_state.is_not(None))
        .subquery()
    )
    # the stay's length is computed by the database: parsing 2 x window timestamps in Python
    # was most of the medians' cost
    stays_q = sa.select(stays.c.to_state, _seconds(stays.c.entered, stays.c.left_at)).where(
        stays.c.left_at.is_not(None)
    )
    with tf.db.read() as conn:
        stored = counts.read(conn, account_id, workflow)
        unrecorded: dict[str, int] = {s: int(n) for s, n in conn.execute(unrecorded_q).all()}
        completed = conn.execute(stays_q).all()

    durations: dict[str, list[float]] = defaultdict(list)
    for state, seconds in completed:
        durations[state].append(float(seconds))
    out = {state: EMPTY for state in definition.spec.states}
    for state, (n, n_breached) in stored.items():
        out[state] = StateStat(n, n_breached + int(unrecorded.get(state, 0)), None, 0)
    for state, values in durations.items():
        base = out.get(state, EMPTY)
        out[state] = StateStat(
            base.count, base.breached, float(statistics.median(values)), len(values)
        )
    return out
