"""A ticket's derived state as a fold over its event history.

:func:`apply` is the only place that turns an event into ticket fields (state, level, priority,
playbook position, outcome, first response, SLA due instants...). The service uses it to compute
what a unit of work writes, and :func:`replay` uses it to rebuild a ticket from its history, so
"replaying the events reproduces the stored ticket" holds by construction and is checkable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from .definition import Definition
from .sla import SlaFields, sla_fields

__all__ = ["EVENT_KINDS", "EventRecord", "TicketState", "apply", "replay"]

EVENT_KINDS = (
    "created",
    "transition",
    "response",
    "field_update",
    "playbook_step",
    "sla_breached",
)


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

    def as_columns(self) -> dict[str, Any]:
        """Flat column values (the SLA fields spread out)."""
        out = {name: getattr(self, name) for name in _COLUMN_FIELDS}
        out.update(self.sla.as_columns())
        return out


_COLUMN_FIELDS = tuple(f.name for f in fields(TicketState) if f.name != "sla")


def apply(definition: Definition, ticket: TicketState | None, event: EventRecord) -> TicketState:
    """The ticket after ``event``. ``ticket`` is None exactly for the ``created`` event."""
    if event.kind == "created":
        if ticket is not None:
            raise ValueError("'created' must be the first event")
        c = event.changes
        complexity, urgency = c.get("complexity"), c.get("urgency")
        state = definition.spec.initial
        new = TicketState(
            kind=c["kind"],
            category=c["category"],
            channel=c["channel"],
            complexity=complexity,
            urgency=urgency,
            priority=definition.priority(complexity, urgency),
            state=state,
            level=definition.level_of(state),
            previous_state=None,
            playbook_position=0,
            outcome=None,
            received_at=_instant(c["received_at"]),
            state_entered_at=event.at,
            first_response_at=None,
            resolved_at=None,
            version=1,
            sla=SlaFields.EMPTY,
        )
        return replace(new, sla=sla_fields(definition, new, None, event))
    if ticket is None:
        raise ValueError(f"{event.kind!r} event before 'created'")

    updates: dict[str, Any] = {"version": ticket.version + 1}
    if event.kind == "transition":
        assert event.to_state is not None
        into_done = definition.group_of(event.to_state) == "done"
        was_done = definition.group_of(ticket.state) == "done"
        updates.update(
            state=event.to_state,
            level=definition.level_of(event.to_state),
            previous_state=ticket.state,
            state_entered_at=event.at,
            # resolved when entering the done group; kept by close; cleared by reopen
            resolved_at=(ticket.resolved_at if was_done else event.at) if into_done else None,
        )
        updates.update(event.changes)
    elif event.kind == "field_update":
        updates.update(event.changes)
        if "category" in event.changes and event.changes["category"] != ticket.category:
            updates["playbook_position"] = 0
        if "complexity" in event.changes or "urgency" in event.changes:
            updates["priority"] = definition.priority(
                updates.get("complexity", ticket.complexity), updates.get("urgency", ticket.urgency)
            )
    elif event.kind == "playbook_step":
        updates["playbook_position"] = ticket.playbook_position + 1
    elif event.kind not in ("response", "sla_breached"):
        raise ValueError(f"unknown event kind {event.kind!r}")
    if event.response and ticket.first_response_at is None:
        updates["first_response_at"] = event.at
    new = replace(ticket, **updates)
    return replace(new, sla=sla_fields(definition, new, ticket, event))


def replay(definition: Definition, events: Iterable[EventRecord]) -> TicketState:
    """Fold a whole history; raises ValueError on an empty or malformed one."""
    ticket: TicketState | None = None
    for event in events:
        ticket = apply(definition, ticket, event)
    if ticket is None:
        raise ValueError("no events")
    return ticket


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
