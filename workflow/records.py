"""Shapes at the edge of the engine: ticket and event views, idempotency keys, and the
conversions between table rows and the domain's records."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from .assignment import after_transition
from .definition import Definition
from .errors import InputError
from .history import EventRecord, TicketState
from .machine import Fired
from .models import Account, IdempotencyRecord, Ticket, TicketEvent
from .sla import SlaFields

__all__ = [
    "EventView",
    "Idempotency",
    "TicketView",
    "check_choice",
    "decode_cursor",
    "encode_cursor",
    "record_of",
    "state_of",
    "take_number",
    "transition_event",
    "utcnow",
]

T = Ticket.__table__  # type: ignore[attr-defined]
E = TicketEvent.__table__  # type: ignore[attr-defined]
A = Account.__table__  # type: ignore[attr-defined]

_TAKE = {
    counter: sa.update(A)
    .where(A.c.id == sa.bindparam("b_account"))
    .values({counter: A.c[counter] + 1})
    .returning(A.c[counter])
    for counter in (
        "last_ticket_number",
        "last_user_number",
        "last_token_number",
        "last_webhook_number",
    )
}


def take_number(conn: Connection, account_id: int, counter: str) -> int:
    """The account's next ticket, user or token number (``counter``: ``last_ticket_number``,
    ``last_user_number`` or ``last_token_number``). The account's row stays locked until the
    caller's transaction ends, so the account's creates take numbers one after the other -
    never the same, never skipping one (a rolled-back create gives its number back) - and
    their primary keys in the same order."""
    return int(conn.execute(_TAKE[counter], {"b_account": account_id}).scalar_one())


IDEM = IdempotencyRecord.__table__  # type: ignore[attr-defined]
STATE_FIELDS = tuple(f.name for f in fields(TicketState) if f.name != "sla")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A client's idempotency key and a fingerprint of its request body."""

    key: str
    fingerprint: str

    @classmethod
    def of(cls, key: str, *parts: Any) -> Idempotency:
        blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
        return cls(key, hashlib.sha256(blob.encode()).hexdigest())


@dataclass(frozen=True, slots=True)
class TicketView:
    """A ticket as the outside world sees it at ``as_of``."""

    id: int
    account: str
    workflow: str
    workflow_version: str
    definition_hash: str
    subject: str
    description: str
    customer_name: str | None
    customer_email: str | None
    requester_id: int | None
    current: TicketState
    created_at: datetime
    updated_at: datetime
    sla: dict[str, dict[str, Any]]
    replayed: bool = False
    """True when rebuilt from history (an idempotent retry's first answer)."""

    def __getattr__(self, name: str) -> Any:  # state, level, priority, version, ...
        return getattr(self.current, name)


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    kind: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    actor: str | None
    role: str | None
    note: str | None
    data: dict[str, Any]
    changes: dict[str, Any]
    at: datetime
    visibility: str = "internal"
    """The note's: ``public`` or ``internal``."""


def transition_event(
    d: Definition,
    ticket: TicketState,
    fired: Fired,
    trigger: str,
    now: datetime,
    data: Mapping[str, Any],
) -> EventRecord:
    """The event of a fired transition; whether it hands the ticket back to the pool is
    decided here (workflow.assignment) and recorded in its changes."""
    return EventRecord(
        kind="transition",
        at=now,
        trigger=trigger,
        from_state=ticket.state,
        to_state=fired.dest,
        changes=after_transition(d, ticket.state, fired.dest, ticket.assignee_id, fired.changes),
        data=data,
        response=fired.transition.response,
    )


def state_of(row: Mapping[str, Any] | RowMapping) -> TicketState:
    values = {name: row[name] for name in STATE_FIELDS}
    sla = SlaFields.from_columns(
        row["sla_state"], row["sla_due_at"], row["sla_risk_at"], row["sla_breached_at"]
    )
    return TicketState(**values, sla=sla)


def record_of(e: Mapping[str, Any] | RowMapping) -> EventRecord:
    return EventRecord(
        kind=e["kind"],
        at=e["at"],
        trigger=e["trigger"],
        from_state=e["from_state"],
        to_state=e["to_state"],
        changes=e["changes"] or {},
        data=e["data"] or {},
        response=bool(e["response"]),
    )


def check_choice(field: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise InputError(field, f"unknown {field} {value!r} (known: {', '.join(allowed)})")


def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"t:{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = raw.split(":", 1)
        ticket_id = int(value)
        if prefix != "t" or not 0 <= ticket_id < 2**31:
            raise ValueError(prefix)
        return ticket_id
    except ValueError:
        raise InputError("cursor", "not a cursor this service returned") from None


@dataclass(frozen=True, slots=True)
class Decision:
    """What a unit of work decided to append: (event, note) pairs. Breach events that fell due
    before the unit ran are added by the unit itself."""

    events: list[tuple[EventRecord, str | None]]
    moves_to: Definition | None = None
    """The version a ``migrated`` event among ``events`` moves the ticket onto."""


NOTHING = Decision([])
