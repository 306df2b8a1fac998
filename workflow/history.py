"""A ticket's derived state as a fold over its event history.

:func:`apply` is the only place that turns an event into ticket fields (state, level, priority,
playbook position, outcome, first response, SLA due instants...). The service uses it to compute
what a unit of work writes, and :func:`replay` uses it to rebuild a ticket from its history, so
"replaying the events reproduces the stored ticket" holds by construction and is checkable.

A ``migrated`` event moves a ticket onto another version of its workflow (see
:mod:`workflow.migrate`): its ``data`` names the version left and the version entered
(``from_hash`` / ``to_hash``), so :func:`replay` folds the events before it with the old
version and those after it with the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Protocol

from .definition import Definition
from .sla import SlaFields, sla_fields

__all__ = [
    "EVENT_KINDS",
    "TICKET_FIELDS",
    "EventRecord",
    "Resolve",
    "TicketFields",
    "TicketState",
    "apply",
    "created_fields",
    "fold",
    "replay",
    "updates",
]

EVENT_KINDS = (
    "created",
    "transition",
    "response",
    "field_update",
    "playbook_step",
    "sla_breached",
    "migrated",
    "comment",
    "assigned",
)

Resolve = Callable[[str], Definition]
"""A definition version by its hash (``DefinitionRegistry.by_hash``)."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One history row as the reducer sees it."""

    kind: str
    at: datetime
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    response: bool = False
    """The event counts as a response to the customer."""


@dataclass(frozen=True, slots=True)
class TicketState:
    """Every field of a ticket that history determines."""

    kind: str
    category: str
    channel: str
    complexity: str | None
    urgency: str | None
    priority: str | None
    state: str
    level: str | None
    previous_state: str | None
    playbook_position: int
    outcome: str | None
    received_at: datetime
    state_entered_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    version: int
    sla: SlaFields
    assignee_id: int | None = None
    """The user working on it (``None``: in the pool); see workflow.assignment."""

    def as_columns(self) -> dict[str, Any]:
        """Flat column values (the SLA fields spread out)."""
        out = {name: getattr(self, name) for name in TICKET_FIELDS}
        out.update(self.sla.as_columns())
        return out


TICKET_FIELDS = tuple(f.name for f in fields(TicketState) if f.name != "sla")
"""The fields of :class:`TicketState` but its clocks."""


class TicketFields(Protocol):
    """What :func:`updates` reads of the ticket before an event."""

    @property
    def version(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def complexity(self) -> str | None: ...
    @property
    def urgency(self) -> str | None: ...
    @property
    def playbook_position(self) -> int: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def state_entered_at(self) -> datetime: ...
    @property
    def first_response_at(self) -> datetime | None: ...
    @property
    def resolved_at(self) -> datetime | None: ...


def apply(
    definition: Definition,
    ticket: TicketState | None,
    event: EventRecord,
    *,
    before: Definition | None = None,
    summary: bool = True,
) -> TicketState:
    """The ticket after ``event``. ``ticket`` is None exactly for the ``created`` event.

    ``definition`` is the version the ticket runs on after the event; for a ``migrated`` event
    ``before`` is the version it leaves (its SLA clocks are closed on that version's calendar).
    ``summary=False``: the clocks only, not the SLA summary columns (see ``sla_fields``)."""
    if event.kind == "created":
        if ticket is not None:
            raise ValueError("'created' must be the first event")
        new = TicketState(**created_fields(definition, event), sla=SlaFields.EMPTY)
        return replace(new, sla=sla_fields(definition, new, None, event, summary=summary))
    if ticket is None:
        raise ValueError(f"{event.kind!r} event before 'created'")
    new = replace(ticket, **updates(definition, ticket, event, before=before))
    # the clocks read the new fields; ``new`` is not seen by anyone yet, so its clocks are set
    # in place instead of by a second ``replace`` (which costs as much as the rest of a fold)
    clocks = sla_fields(definition, new, ticket, event, before=before, summary=summary)
    object.__setattr__(new, "sla", clocks)
    return new


def created_fields(definition: Definition, event: EventRecord) -> dict[str, Any]:
    """Every field but the clocks of the ticket a ``created`` event makes (see :func:`apply`)."""
    c = event.changes
    complexity, urgency = c.get("complexity"), c.get("urgency")
    state = definition.spec.initial
    return {
        "kind": c["kind"],
        "category": c["category"],
        "channel": c["channel"],
        "complexity": complexity,
        "urgency": urgency,
        "priority": definition.priority(complexity, urgency),
        "state": state,
        "level": definition.level_of(state),
        "previous_state": None,
        "playbook_position": 0,
        "outcome": None,
        "received_at": _instant(c["received_at"]),
        "state_entered_at": event.at,
        "first_response_at": None,
        "resolved_at": None,
        "version": 1,
    }


def updates(
    definition: Definition,
    ticket: TicketFields,
    event: EventRecord,
    *,
    before: Definition | None = None,
) -> dict[str, Any]:
    """The fields (not the clocks) that any event but ``created`` changes, with their new
    values (see :func:`apply`). ``ticket``: the ticket before - a :class:`TicketState` or any
    object with its fields (the what-if replay keeps them on a mutable record)."""
    out: dict[str, Any] = {"version": ticket.version + 1}
    if event.kind == "transition":
        assert event.to_state is not None
        into_done = definition.group_of(event.to_state) == "done"
        was_done = definition.group_of(ticket.state) == "done"
        out.update(
            state=event.to_state,
            level=definition.level_of(event.to_state),
            previous_state=ticket.state,
            state_entered_at=event.at,
            # resolved when entering the done group; kept by close; cleared by reopen
            resolved_at=(ticket.resolved_at if was_done else event.at) if into_done else None,
        )
        out.update(event.changes)
    elif event.kind == "field_update":
        out.update(event.changes)
        if "category" in event.changes and event.changes["category"] != ticket.category:
            out["playbook_position"] = 0
        if "complexity" in event.changes or "urgency" in event.changes:
            out["priority"] = definition.priority(
                out.get("complexity", ticket.complexity), out.get("urgency", ticket.urgency)
            )
    elif event.kind == "playbook_step":
        out["playbook_position"] = ticket.playbook_position + 1
    elif event.kind == "migrated":
        if before is None:
            raise ValueError("a 'migrated' event needs the version it leaves (before=)")
        assert event.to_state is not None
        into_done = definition.group_of(event.to_state) == "done"
        was_done = before.group_of(ticket.state) == "done"
        moved = event.to_state != ticket.state
        out.update(
            state=event.to_state,
            level=definition.level_of(event.to_state),
            state_entered_at=event.at if moved else ticket.state_entered_at,
            resolved_at=(ticket.resolved_at if was_done else event.at) if into_done else None,
            priority=definition.priority(ticket.complexity, ticket.urgency),
        )
        out.update(event.changes)  # previous_state, mapped onto the new version
    elif event.kind == "assigned":
        out.update(event.changes)
    elif event.kind not in ("response", "sla_breached", "comment"):
        raise ValueError(f"unknown event kind {event.kind!r}")
    if event.response and ticket.first_response_at is None:
        out["first_response_at"] = event.at
    return out


def replay(
    definition: Definition, events: Iterable[EventRecord], *, resolve: Resolve | None = None
) -> TicketState:
    """Fold a whole history; raises ValueError on an empty or malformed one.

    ``definition`` is the version the ticket runs on now. A history with ``migrated`` events
    starts on the version the first of them left and switches at each; ``resolve`` finds those
    versions by hash (required then), and the last one entered must be ``definition``."""
    history = events if isinstance(events, list) else list(events)
    ticket, current = fold(definition, history, resolve=resolve)
    if current.hash != definition.hash:
        raise ValueError(
            f"the history ends on version #{current.hash}, but the ticket is on #{definition.hash}"
        )
    return ticket


def fold(
    definition: Definition,
    history: list[EventRecord],
    *,
    resolve: Resolve | None = None,
    upto: int | None = None,
) -> tuple[TicketState, Definition]:
    """The ticket after the first ``upto`` events (all by default) of its whole ``history``,
    and the version it ran on then. ``definition`` is the version it runs on now."""
    migrations = [e for e in history if e.kind == "migrated"]
    current = definition
    if migrations:
        if resolve is None:
            raise ValueError("the history has 'migrated' events: replay needs resolve=")
        current = resolve(migrations[0].data["from_hash"])
    ticket: TicketState | None = None
    for event in history[:upto]:
        if event.kind == "migrated":
            assert resolve is not None
            if event.data["from_hash"] != current.hash:
                raise ValueError(
                    f"'migrated' event leaves version #{event.data['from_hash']}, but the "
                    f"ticket was on #{current.hash}"
                )
            target = resolve(event.data["to_hash"])
            ticket = apply(target, ticket, event, before=current)
            current = target
        else:
            ticket = apply(current, ticket, event)
    if ticket is None:
        raise ValueError("no events")
    return ticket, current


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
