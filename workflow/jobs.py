"""Background jobs: record SLA breaches, close tickets past their auto-close delay.

Each job first takes a database-wide lock (:meth:`workflow.db.Database.exclusive`), so with
several servers one runs it at a time; and each ticket is changed through an ordinary unit of
work, so even two runners could not record a breach twice (the compare-and-set decides, and a
recorded clock is never due again).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .definition import Definition
from .errors import TierflowError
from .history import TicketState
from .machine import ADMIN, machine_for
from .records import NOTHING, Decision, T, transition_event

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["close_expired", "scan_sla"]

log = logging.getLogger("tierflow.jobs")


def scan_sla(tf: Tierflow, *, limit: int = 1000) -> int:
    """Record one ``sla_breached`` event per running clock past due; returns how many tickets
    got one (0 when another runner holds the job)."""
    with tf.db.exclusive("tierflow:sla-scan") as mine:
        return _scan_sla(tf, limit) if mine else 0


def _scan_sla(tf: Tierflow, limit: int) -> int:
    now = tf.clock()
    touched = 0
    while True:
        with tf.db.read() as conn:
            rows = conn.execute(
                sa.select(T.c.id, T.c.account_id, T.c.number)
                .where(T.c.sla_due_at <= now)
                .order_by(T.c.sla_due_at, T.c.id)
                .limit(limit)
            ).all()
        progressed = 0
        for r in rows:
            _view, written = tf._unit(
                tf.account_slug(r.account_id),
                r.number,
                lambda *_: NOTHING,
                None,
                "system",
                None,
                None,
            )
            progressed += int(written > 0)
        touched += progressed
        if len(rows) < limit or not progressed:
            return touched


def close_expired(tf: Tierflow, *, limit: int = 1000) -> int:
    """Fire each definition's ``auto_close`` trigger on tickets that stayed in its state for
    ``after_days``; returns how many were closed."""
    with tf.db.exclusive("tierflow:auto-close") as mine:
        return _close_expired(tf, limit) if mine else 0


def _close_expired(tf: Tierflow, limit: int) -> int:
    now = tf.clock()
    rules = [d.spec.auto_close for d in tf.registry.loaded() if d.spec.auto_close]
    if not rules:
        return 0
    states = sorted({r.state for r in rules})
    oldest = now - timedelta(days=min(r.after_days for r in rules))

    def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
        rule = d.spec.auto_close
        if (
            rule is None
            or ticket.state != rule.state
            or now - ticket.state_entered_at < timedelta(days=rule.after_days)
        ):
            return NOTHING  # moved on since we looked, or its version closes later
        fired = machine_for(d).fire(ticket, rule.trigger, role=ADMIN, now=now)
        note = f"closed automatically after {rule.after_days:g} days in {rule.state}"
        return Decision([(transition_event(d, ticket, fired, rule.trigger, now, {}), note)])

    closed = 0
    after_id = 0
    while True:
        with tf.db.read() as conn:
            rows = conn.execute(
                sa.select(T.c.id, T.c.account_id, T.c.number)
                .where(T.c.state.in_(states), T.c.state_entered_at <= oldest, T.c.id > after_id)
                .order_by(T.c.id)
                .limit(limit)
            ).all()
        for r in rows:
            try:
                _view, written = tf._unit(
                    tf.account_slug(r.account_id),
                    r.number,
                    decide,
                    "auto-close",
                    "system",
                    None,
                    None,
                )
            except TierflowError as exc:  # a guard on the close trigger: leave it be
                log.warning(
                    "auto-close skipped ticket %s of %s: %s",
                    r.number,
                    tf.account_slug(r.account_id),
                    exc.detail,
                )
                continue
            closed += int(written > 0)
        if len(rows) < limit:
            return closed
        after_id = rows[-1].id
