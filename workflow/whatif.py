"""What would a candidate definition have done to an account's real tickets?

:func:`what_if` takes the account's tickets of the candidate's workflow received in a window and
answers twice - for what happened (each ticket on the version it ran on: its stored clocks, which
``tierflow check`` proves equal to its history) and for the candidate, through which each
ticket's real history is replayed: the same events at the same instants, folded by
:func:`workflow.history.apply` with the candidate's states, priority matrix, calendar and SLA
clocks (the very code live tickets use). Per side: tickets, first-response and resolution
attainment (met / breached / still open, and the share met of those decided), breached clocks by
priority, and the median business time to the first response. For the candidate, also the events
its transitions, roles or guards would have refused (the replay goes on as it happened: the
question is what the candidate would have said, not a different history).

Evaluated at ``now``: a clock is *met* when it stopped before its target, *breached* when its
target was reached (stopped or not), *open* otherwise (running or paused short of it). Breach
events recorded under the version that ran are not replayed through the candidate: its own
clocks decide when it would have breached. A ticket whose history the candidate cannot follow
(a state it does not have) is listed with the reason, not counted. Nothing is written.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .definition import Definition
from .errors import Forbidden, InputError
from .guards import GuardContext
from .history import EventRecord, TicketState, apply
from .machine import ADMIN, machine_for
from .migrate import MIGRATORS
from .records import E, T, state_of
from .sla import clock_report

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["MAX_REFUSALS", "Attainment", "Refusal", "Side", "WhatIf", "what_if"]

MAX_REFUSALS = 1000
"""The answer lists at most this many refused events (and counts them all)."""
BATCH = 1000
"""Tickets read (with their events) per round trip."""
_ANY_ROLE = frozenset({ADMIN, "system"})
"""Roles of recorded events that any transition accepts (the platform admin, the background
jobs)."""


@dataclass(slots=True)
class Attainment:
    met: int = 0
    breached: int = 0
    open: int = 0

    @property
    def share_met(self) -> float | None:
        decided = self.met + self.breached
        return None if decided == 0 else self.met / decided

    def to_dict(self) -> dict[str, Any]:
        return {
            "met": self.met,
            "breached": self.breached,
            "open": self.open,
            "share_met": self.share_met,
        }


@dataclass(slots=True)
class Side:
    """One answer: what happened, or what the candidate would have done."""

    label: str
    versions: list[str]
    tickets: int = 0
    first_response: Attainment = field(default_factory=Attainment)
    resolution: Attainment = field(default_factory=Attainment)
    breaches_by_priority: Counter[str] = field(default_factory=Counter)
    first_response_seconds: list[float] = field(default_factory=list)
    not_replayed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median_first_response_seconds(self) -> float | None:
        return (
            statistics.median(self.first_response_seconds) if self.first_response_seconds else None
        )

    def count(self, definition: Definition, ticket: TicketState, now: datetime) -> None:
        self.tickets += 1
        for name, clock in ticket.sla.clocks.items():
            spec = definition.spec.sla.get(name)
            if spec is None:
                continue
            status = clock_report(definition, clock, now)["status"]
            if status == "none":
                continue
            tally = self.first_response if spec.stop == "first_response" else self.resolution
            if status == "met":
                tally.met += 1
            elif status == "breached":
                tally.breached += 1
                self.breaches_by_priority[ticket.priority or "unset"] += 1
            else:
                tally.open += 1
            if spec.stop == "first_response" and clock.stopped_at is not None:
                self.first_response_seconds.append(clock.elapsed.total_seconds())

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "versions": self.versions,
            "tickets": self.tickets,
            "first_response": self.first_response.to_dict(),
            "resolution": self.resolution.to_dict(),
            "breaches_by_priority": dict(sorted(self.breaches_by_priority.items())),
            "median_first_response_business_seconds": self.median_first_response_seconds,
            "not_replayed": self.not_replayed,
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    ticket_id: int
    seq: int
    at: datetime
    event: str
    from_state: str | None
    guard: str
    message: str


@dataclass(frozen=True, slots=True)
class WhatIf:
    account: str
    workflow: str
    since: datetime
    until: datetime
    evaluated_at: datetime
    current: Side
    candidate: Side
    refused: list[Refusal]
    refused_total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "workflow": self.workflow,
            "window": {"from": self.since, "to": self.until},
            "evaluated_at": self.evaluated_at,
            "current": self.current.to_dict(),
            "candidate": self.candidate.to_dict(),
            "refused": [
                {
                    "ticket": r.ticket_id,
                    "seq": r.seq,
                    "at": r.at,
                    "event": r.event,
                    "from_state": r.from_state,
                    "guard": r.guard,
                    "message": r.message,
                }
                for r in self.refused
            ],
            "refused_total": self.refused_total,
        }


def what_if(
    tf: Tierflow,
    *,
    account: str,
    candidate: Definition,
    since: datetime,
    until: datetime,
    role: str = ADMIN,
) -> WhatIf:
    """Replay ``account``'s tickets of ``candidate.name`` received in ``[since, until)`` through
    ``candidate`` and compare with what happened (see the module docstring). It reads every
    ticket of the window: the roles that may migrate tickets may ask (``MIGRATORS``)."""
    if role not in MIGRATORS:
        raise Forbidden(role, "ask what a candidate definition would have done", list(MIGRATORS))
    for name, value in (("from", since), ("to", until)):
        if value.tzinfo is None:
            raise InputError(name, "must carry a UTC offset (ISO 8601 with offset)")
    if since >= until:
        raise InputError("to", f"{until.isoformat()} is not after from ({since.isoformat()})")
    account_id = tf.account_id(account)
    now = tf.clock()
    current = Side("as it happened", [])
    cand = Side("candidate", [f"{candidate.version} #{candidate.hash}"])
    refused: list[Refusal] = []
    total = 0
    seen_versions: dict[str, None] = {}
    for rows, events in _batches(tf, account_id, candidate.name, since, until):
        for row in rows:
            d = tf.registry.by_hash(row["definition_hash"])
            seen_versions.setdefault(f"{d.version} #{d.hash}")
            current.count(d, state_of(row), now)
            out: list[Refusal] = []
            try:
                ticket = _replay(candidate, row["number"], events[row["id"]], out)
            except (KeyError, ValueError) as exc:
                cand.not_replayed.append({"ticket": row["number"], "message": _why(exc, candidate)})
            else:
                cand.count(candidate, ticket, now)
            total += len(out)
            refused.extend(out[: max(0, MAX_REFUSALS - len(refused))])
    current.versions = list(seen_versions)
    return WhatIf(account, candidate.name, since, until, now, current, cand, refused, total)


@dataclass(frozen=True, slots=True)
class _Event:
    record: EventRecord
    seq: int
    role: str | None
    note: str | None


_EVENTS = (
    sa.select(
        E.c.ticket_id,
        E.c.seq,
        E.c.kind,
        E.c.trigger,
        E.c.from_state,
        E.c.to_state,
        # as text: most are '{}', decoded only when not
        sa.cast(E.c.changes, sa.Text).label("changes"),
        sa.cast(E.c.data, sa.Text).label("data"),
        E.c.response,
        E.c.role,
        E.c.note,
        E.c.at,
    )
    # breaches recorded under the version that ran: the candidate's clocks decide its own
    .where(E.c.ticket_id.in_(sa.bindparam("ids", expanding=True)), E.c.kind != "sla_breached")
    .order_by(E.c.ticket_id, E.c.seq)
)


def _object(text: str | None) -> dict[str, Any]:
    if not text or text == "{}":
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _batches(
    tf: Tierflow, account_id: int, workflow: str, since: datetime, until: datetime
) -> Iterable[tuple[list[dict[str, Any]], dict[int, list[_Event]]]]:
    last = 0
    while True:
        with tf.db.read() as conn:
            rows = [
                dict(r)
                for r in conn.execute(
                    sa.select(T)
                    .where(
                        T.c.account_id == account_id,
                        T.c.workflow == workflow,
                        T.c.received_at >= since,
                        T.c.received_at < until,
                        T.c.id > last,
                    )
                    .order_by(T.c.id)
                    .limit(BATCH)
                ).mappings()
            ]
            if not rows:
                return
            ids = [r["id"] for r in rows]
            events: dict[int, list[_Event]] = {i: [] for i in ids}
            for e in conn.execute(_EVENTS, {"ids": ids}):
                record = EventRecord(
                    kind=e.kind,
                    at=e.at,
                    trigger=e.trigger,
                    from_state=e.from_state,
                    to_state=e.to_state,
                    changes=_object(e.changes),
                    data=_object(e.data),
                    response=bool(e.response),
                )
                events[e.ticket_id].append(_Event(record, e.seq, e.role, e.note))
        yield rows, events
        last = ids[-1]


def _replay(
    candidate: Definition, ticket_id: int, events: list[_Event], refused: list[Refusal]
) -> TicketState:
    machine = machine_for(candidate)
    ticket: TicketState | None = None
    for e in events:
        event = e.record
        if event.kind == "transition" and ticket is not None:
            for guard, message in _judge(candidate, machine, ticket, event, e.role, e.note):
                refused.append(
                    Refusal(
                        ticket_id,
                        e.seq,
                        event.at,
                        event.trigger or "",
                        event.from_state,
                        guard,
                        message,
                    )
                )
        if event.kind == "migrated":  # a state change within the candidate
            ticket = apply(candidate, ticket, event, before=candidate, summary=False)
        else:
            ticket = apply(candidate, ticket, event, summary=False)
    if ticket is None:
        raise ValueError("no events")
    return ticket


def _judge(
    candidate: Definition,
    machine: Any,
    ticket: TicketState,
    event: EventRecord,
    role: str | None,
    note: str | None,
) -> list[tuple[str, str]]:
    """(guard, message) for each reason the candidate would have refused this transition."""
    trigger, source = event.trigger or "", event.from_state or ticket.state
    t = candidate.by_state.get(source, {}).get(trigger)
    if t is None:
        return [
            (
                "transition",
                f"version {candidate.version} has no trigger {trigger!r} from {source!r}",
            )
        ]
    out: list[tuple[str, str]] = []
    role = role or ""
    if role not in _ANY_ROLE and role not in t.roles:
        allowed = ", ".join(sorted(t.roles))
        out.append(("role", f"role {role!r} may not fire {trigger!r} here (allowed: {allowed})"))
    ctx = GuardContext(ticket, candidate, role, note, event.data, event.at)
    out += [(r.guard, r.message) for r in machine.reasons(t, ctx)]
    return out


def _why(exc: Exception, candidate: Definition) -> str:
    if isinstance(exc, KeyError):
        return (
            f"version {candidate.version} has no {exc.args[0]!r} "
            "(a state or value this ticket's history uses)"
        )
    return str(exc)
