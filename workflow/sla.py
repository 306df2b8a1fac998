"""SLA clocks on the definition's business calendar.

Each clock named in a definition's ``sla`` section runs in business time from the ticket's
``received_at``. It is *stopped* while its stop condition holds (``first_response``: a response
was given; ``resolution``: the ticket is in a ``done`` state), *paused* while the ticket is in
one of its ``pause_in`` states, and *running* otherwise. Its state is folded from the ticket's
events by :func:`sla_fields` (called by :func:`workflow.history.apply`), never kept as a mutable
counter, so replaying the history reproduces it exactly.

Stored per clock: accumulated business time (exact to the microsecond: JSON ``elapsed_us``;
rows written before carry whole seconds in ``elapsed_s`` and still load), since when it runs,
the due instant (when running), the breach instant once it is known. Stored per ticket
(indexed): the earliest due instant and at-risk instant of its running clocks, and the earliest
breach.

After a migration to another version of the workflow (a ``migrated`` event), each clock keeps
the business time it used, measured on the old version's calendar up to the migration instant,
and from then on runs on the new version's calendar (with the holidays pinned in that version)
against the new version's target for the ticket's priority. A breach already happened stays; a
clock whose time used already reaches its new target breaches at the migration, never earlier
(like a target change); a clock only the new version has starts at the migration with nothing
used; a clock the new version drops is gone (its breach events stay in the history).

A breach happens when the business time used reaches the target (``>=``). When a target is
changed (the priority changed) while the time already used reaches the new target, the breach
is at that change, never earlier. The running stretch of a clock is closed (its business time
added to the accumulated time) at every pause, stop and target change.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from .definition import Definition
    from .history import EventRecord, TicketState

__all__ = [
    "AT_RISK_FRACTION",
    "ClockInputs",
    "ClockState",
    "SlaFields",
    "clock_report",
    "clocks_after",
    "due_breaches",
    "sla_fields",
]

AT_RISK_FRACTION = 0.2
"""A clock that is not stopped nor breached is at risk when no more than this fraction of its
target is left - running or paused: a paused clock cannot progress, but the moment the ticket
comes back (the customer replies) the team has only that little time left, which is what a
support lead watching ``?sla=at_risk`` wants to see coming."""

_ZERO = timedelta(0)
_US = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
Status = Literal["running", "paused", "met", "breached", "none"]


@dataclass(frozen=True, slots=True)
class ClockState:
    target_s: int | None
    elapsed: timedelta
    """Business time accumulated before ``running_since`` (exact, microseconds)."""
    running_since: datetime | None
    stopped_at: datetime | None
    due_at: datetime | None
    breached_at: datetime | None
    breach_recorded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "target_s": self.target_s,
            "elapsed_us": self.elapsed // _US,
            "elapsed_s": self.elapsed // _SECOND,  # whole seconds, for readers of old releases
            "running_since": _iso(self.running_since),
            "stopped_at": _iso(self.stopped_at),
            "due_at": _iso(self.due_at),
            "breached_at": _iso(self.breached_at),
            "breach_recorded": self.breach_recorded,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClockState:
        return cls(
            target_s=d["target_s"],
            elapsed=(
                timedelta(microseconds=d["elapsed_us"])
                if "elapsed_us" in d
                else timedelta(seconds=d["elapsed_s"])  # rows written before microseconds
            ),
            running_since=_parse(d["running_since"]),
            stopped_at=_parse(d["stopped_at"]),
            due_at=_parse(d["due_at"]),
            breached_at=_parse(d["breached_at"]),
            breach_recorded=d.get("breach_recorded", False),
        )


@dataclass(frozen=True, slots=True)
class SlaFields:
    clocks: dict[str, ClockState]
    due_at: datetime | None
    """Earliest due instant among running clocks whose breach is not recorded yet."""
    risk_at: datetime | None
    """Earliest instant at which a running clock becomes at risk."""
    breached_at: datetime | None
    """Earliest breach of any clock."""

    EMPTY: ClassVar[SlaFields]

    def as_columns(self) -> dict[str, Any]:
        return {
            "sla_state": {k: v.to_json() for k, v in self.clocks.items()},
            "sla_due_at": self.due_at,
            "sla_risk_at": self.risk_at,
            "sla_breached_at": self.breached_at,
        }

    @classmethod
    def from_columns(
        cls, state: dict[str, Any] | None, due: Any, risk: Any, breached: Any
    ) -> SlaFields:
        clocks = {k: ClockState.from_json(v) for k, v in (state or {}).items()}
        return cls(clocks, _utc(due), _utc(risk), _utc(breached))


SlaFields.EMPTY = SlaFields({}, None, None, None)


def _target(definition: Definition, name: str, priority: str | None) -> int | None:
    hours = definition.spec.sla[name].target_hours
    value = hours.get(priority, hours.get("all")) if priority else hours.get("all")
    return None if value is None else round(value * 3600)


class _Clock:
    """One clock of a definition, looked up once: its stop condition, its pause states and its
    target (business seconds) for each priority met so far."""

    __slots__ = ("by_response", "name", "pause_in", "targets")

    def __init__(self, definition: Definition, name: str) -> None:
        spec = definition.spec.sla[name]
        self.name = name
        self.by_response = spec.stop == "first_response"
        self.pause_in = frozenset(spec.pause_in)
        self.targets: dict[str | None, int | None] = {}


_CLOCKS: weakref.WeakKeyDictionary[Definition, tuple[_Clock, ...]] = weakref.WeakKeyDictionary()


def _clocks_of(definition: Definition) -> tuple[_Clock, ...]:
    found = _CLOCKS.get(definition)
    if found is None:
        found = _CLOCKS[definition] = tuple(_Clock(definition, n) for n in definition.spec.sla)
    return found


class ClockInputs(Protocol):
    """What the clocks read of a ticket (after the event)."""

    @property
    def priority(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def first_response_at(self) -> datetime | None: ...
    @property
    def received_at(self) -> datetime: ...


def sla_fields(
    definition: Definition,
    new: TicketState,
    old: TicketState | None,
    event: EventRecord,
    *,
    before: Definition | None = None,
    summary: bool = True,
) -> SlaFields:
    """Every clock of ``new`` after ``event``; ``old`` is the ticket before (None at creation).
    ``before``: the version a ``migrated`` event leaves (``definition`` is the one it enters).
    ``summary=False`` leaves the per-ticket columns (earliest due, at-risk, breach) empty: for a
    reader that needs the clocks only (what-if)."""
    clocks = clocks_after(
        definition, new, None if old is None else old.sla.clocks, event, before=before
    )
    if not summary:
        return SlaFields(clocks, None, None, None)
    return _summary(definition, clocks, event.at)


def clocks_after(
    definition: Definition,
    new: ClockInputs,
    old: Mapping[str, ClockState] | None,
    event: EventRecord,
    *,
    before: Definition | None = None,
) -> dict[str, ClockState]:
    """Every clock of ``definition`` after ``event``: ``new`` is the ticket after it, ``old``
    its clocks before (None at creation). The one fold of the clocks: :func:`sla_fields` (live
    tickets) and the what-if replay both step them here."""
    plan = _clocks_of(definition)
    clocks: dict[str, ClockState] = {}
    if not plan:
        return clocks
    cal = definition.calendar
    at = event.at
    done = definition.group_of(new.state) == "done"
    responded = new.first_response_at is not None
    priority = new.priority
    for clock in plan:
        name = clock.name
        try:
            target = clock.targets[priority]
        except KeyError:
            target = clock.targets[priority] = _target(definition, name, priority)
        stopped = responded if clock.by_response else done
        active = not stopped and new.state not in clock.pause_in
        prev = old.get(name) if old is not None else None
        if before is not None and old is not None:
            prev = _carried(before, prev, at)
        if prev is None:  # the clock starts when the customer asked
            elapsed = _ZERO
            running_since: datetime | None = new.received_at if active else None
            breached_at, recorded, stopped_at = None, False, (at if stopped else None)
        else:
            elapsed, running_since = prev.elapsed, prev.running_since
            breached_at, recorded, stopped_at = (
                prev.breached_at,
                prev.breach_recorded,
                prev.stopped_at,
            )
            retargeted = target != prev.target_s
            if running_since is not None and (not active or retargeted):
                # close the running stretch at this event: when it stops, or when the target
                # changes (a lowered target is then measured against the time used up to now)
                elapsed += cal.between(running_since, at)
                running_since = at if active else None
            elif running_since is None and active:
                running_since = at
            stopped_at = (stopped_at or at) if stopped else None
            if event.kind == "sla_breached" and event.data.get("clock") == name:
                recorded = True
                breached_at = breached_at or prev.due_at
            if breached_at is None and target is not None and elapsed >= timedelta(seconds=target):
                # the time used already reaches the target at this event: it was reached at
                # the due instant the clock had, unless the target itself changed at this event
                # (a raised priority), in which case at this very event - never earlier
                if retargeted or prev.due_at is None or prev.due_at > at:
                    breached_at = at
                else:
                    breached_at = prev.due_at
        due_at = None
        if target is not None and running_since is not None:
            if breached_at is not None:
                due_at = breached_at
            elif (
                prev is not None
                and prev.due_at is not None
                and prev.breached_at is None
                and prev.running_since == running_since
                and prev.elapsed == elapsed
                and prev.target_s == target
            ):
                due_at = prev.due_at  # the same stretch, time used and target: the same instant
            else:
                left = max(timedelta(seconds=target) - elapsed, _ZERO)
                due_at = cal.add(running_since, left)
        clocks[name] = ClockState(
            target, elapsed, running_since, stopped_at, due_at, breached_at, recorded
        )
    return clocks


_FRESH = ClockState(None, _ZERO, None, None, None, None)
"""A clock the version left did not have: it starts at the migration with nothing used."""


def _carried(before: Definition, prev: ClockState | None, at: datetime) -> ClockState:
    """A clock as it leaves version ``before`` at ``at``: its running stretch closed on that
    version's calendar (the new version's calendar counts from ``at`` on)."""
    if prev is None:
        return _FRESH
    if prev.running_since is None:
        return prev
    used = prev.elapsed + before.calendar.between(prev.running_since, at)
    return ClockState(
        prev.target_s,
        used,
        None,
        prev.stopped_at,
        prev.due_at,
        prev.breached_at,
        prev.breach_recorded,
    )


def _summary(definition: Definition, clocks: dict[str, ClockState], at: datetime) -> SlaFields:
    """The per-ticket columns. ``at`` is the instant of the event folded: a paused clock that
    is already at risk counts as at risk since then (its exact entry into risk is not kept)."""
    cal = definition.calendar
    dues: list[datetime] = []
    risks: list[datetime] = []
    for c in clocks.values():
        if c.target_s is None or c.breach_recorded:
            continue
        risk_left = timedelta(seconds=c.target_s) * (1 - AT_RISK_FRACTION) - c.elapsed
        if c.running_since is None:  # paused (not stopped, not breached): at risk or not
            if c.stopped_at is None and c.breached_at is None and risk_left <= _ZERO:
                risks.append(at)
            continue
        if c.due_at is None:
            continue
        dues.append(c.due_at)
        risks.append(cal.add(c.running_since, max(risk_left, _ZERO)))
    breaches = [c.breached_at for c in clocks.values() if c.breached_at is not None]
    return SlaFields(
        clocks,
        min(dues) if dues else None,
        min(risks) if risks else None,
        min(breaches) if breaches else None,
    )


def due_breaches(ticket: TicketState, now: datetime) -> list[str]:
    """Names of running clocks past their due instant whose breach is not recorded yet."""
    return [
        name
        for name, c in ticket.sla.clocks.items()
        if not c.breach_recorded
        and c.due_at is not None
        and c.running_since is not None
        and c.due_at <= now
    ]


def clock_report(definition: Definition, clock: ClockState, now: datetime) -> dict[str, Any]:
    """The API's view of one clock at ``now``."""
    elapsed = clock.elapsed
    if clock.running_since is not None and now > clock.running_since:
        elapsed += definition.calendar.between(clock.running_since, now)
    status: Status
    if clock.target_s is None:
        status = "none"
    elif clock.breached_at is not None or (clock.due_at is not None and clock.due_at <= now):
        status = "breached"
    elif clock.stopped_at is not None:
        status = "met"
    elif clock.running_since is None:
        status = "paused"
    else:
        status = "running"
    breached_at = clock.breached_at
    if breached_at is None and status == "breached":
        breached_at = clock.due_at
    return {
        "target_business_seconds": clock.target_s,
        "due_at": clock.due_at,
        "status": status,
        "stopped_at": clock.stopped_at,
        "elapsed_business_seconds": elapsed.total_seconds(),
        "remaining_business_seconds": (
            None
            if clock.target_s is None
            else (timedelta(seconds=clock.target_s) - elapsed).total_seconds()
        ),
        "breached_at": breached_at,
    }


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.astimezone(UTC).isoformat()


def _parse(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
