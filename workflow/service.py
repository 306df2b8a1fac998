"""Units of work: create a ticket, fire a trigger, respond, update fields, record a step.

Each unit of work is one transaction: read the ticket, decide with the definition's machine,
fold the resulting event(s) with :func:`workflow.history.apply`, then compare-and-set the ticket
on its ``version`` and append the event rows. A refusal raises before anything is written; a
lost race is retried a bounded number of times (or reported as :class:`VersionMismatch` when the
caller named the version it expected). The hot path speaks SQLAlchemy Core.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from .db import Database
from .definition import Definition, builtin_definitions, parse_text
from .errors import (
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InputError,
    InvalidTransition,
    NotFound,
    TierflowError,
    VersionMismatch,
)
from .history import EventRecord, TicketState, apply, replay
from .machine import ADMIN, Fired, Option, machine_for
from .models import Account, DefinitionVersion, IdempotencyRecord, Ticket, TicketEvent
from .sla import SlaFields, clock_report, due_breaches

__all__ = [
    "MAX_ATTEMPTS",
    "Clock",
    "EventView",
    "Idempotency",
    "Observer",
    "TicketView",
    "Tierflow",
    "utcnow",
]

log = logging.getLogger("tierflow.engine")
Clock = Callable[[], datetime]
Observer = Callable[["TicketView", list[EventRecord]], None]
"""Called after a unit of work committed, with the ticket and the events it appended."""
MAX_ATTEMPTS = 8
"""How often a unit of work that lost a race is retried before :class:`Conflict`."""

T = Ticket.__table__  # type: ignore[attr-defined]
E = TicketEvent.__table__  # type: ignore[attr-defined]
A = Account.__table__  # type: ignore[attr-defined]
IDEM = IdempotencyRecord.__table__  # type: ignore[attr-defined]
_STATE_FIELDS = tuple(f.name for f in fields(TicketState) if f.name != "sla")


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


@dataclass(frozen=True, slots=True)
class _Decision:
    """What a unit of work decided to append (breach events are added by the unit itself)."""

    events: list[tuple[EventRecord, str | None]]  # (event, note)


class Tierflow:
    """The engine over one database: definitions, tickets, units of work.

    Every method takes keyword arguments only; ``account`` is an account slug.
    """

    def __init__(
        self,
        database: Database | str | None = None,
        *,
        definitions: list[Definition] | None = None,
        clock: Clock = utcnow,
        create_schema: bool = True,
    ) -> None:
        self.db = database if isinstance(database, Database) else Database(database)
        self.clock = clock
        if create_schema:  # bring the schema to the newest migration (idempotent)
            from .schema import upgrade

            upgrade(self.db)
        self._by_hash: dict[str, Definition] = {}
        self._latest: dict[str, Definition] = {}
        self._accounts: dict[str, int] = {}
        self.observers: list[Observer] = []
        for d in definitions if definitions is not None else builtin_definitions():
            self.register(d)

    # --- definitions ---------------------------------------------------------------------
    def register(self, definition: Definition) -> None:
        """Make ``definition`` the current version of its name (stored for old tickets' sake)."""
        with self.db.write() as conn:
            exists = conn.execute(
                sa.select(DefinitionVersion.__table__.c.hash).where(  # type: ignore[attr-defined]
                    DefinitionVersion.__table__.c.hash == definition.hash  # type: ignore[attr-defined]
                )
            ).first()
            if exists is None:
                conn.execute(
                    sa.insert(DefinitionVersion.__table__),  # type: ignore[attr-defined]
                    {
                        "hash": definition.hash,
                        "name": definition.name,
                        "version": definition.version,
                        "source": definition.source_text or json.dumps(definition.to_dict()),
                        "created_at": self.clock(),
                    },
                )
        self._by_hash[definition.hash] = definition
        self._latest[definition.name] = definition
        machine_for(definition)

    def definitions(self) -> list[Definition]:
        return list(self._latest.values())

    def definition(self, name: str, version: str | None = None) -> Definition:
        """The current definition of ``name``, or the one with that human version or hash."""
        if version is None:
            d = self._latest.get(name)
            if d is None:
                raise NotFound("workflow", name)
            return d
        for d in self._by_hash.values():
            if d.name == name and version in (d.version, d.hash):
                return d
        with self.db.read() as conn:
            dv = DefinitionVersion.__table__.c  # type: ignore[attr-defined]
            row = conn.execute(
                sa.select(dv.hash)
                .where(dv.name == name, sa.or_(dv.version == version, dv.hash == version))
                .order_by(dv.created_at.desc())
            ).first()
        if row is None:
            raise NotFound("workflow version", f"{name}@{version}")
        return self._definition_by_hash(row.hash)

    def versions(self, name: str) -> list[tuple[str, str, datetime]]:
        """(human version, hash, first seen) of every stored version of ``name``, newest first."""
        dv = DefinitionVersion.__table__.c  # type: ignore[attr-defined]
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(dv.version, dv.hash, dv.created_at)
                .where(dv.name == name)
                .order_by(dv.created_at.desc())
            ).all()
        return [(r.version, r.hash, r.created_at) for r in rows]

    def _definition_by_hash(self, h: str) -> Definition:
        d = self._by_hash.get(h)
        if d is None:
            dv = DefinitionVersion.__table__.c  # type: ignore[attr-defined]
            with self.db.read() as conn:
                row = conn.execute(sa.select(dv.source).where(dv.hash == h)).first()
            if row is None:
                raise NotFound("definition version", h)
            d = parse_text(row.source, source=f"stored definition {h}")
            self._by_hash[h] = d
        return d

    # --- accounts ------------------------------------------------------------------------
    def create_account(self, *, slug: str, name: str) -> int:
        if not slug or not slug.replace("-", "").replace("_", "").isalnum() or slug != slug.lower():
            raise InputError("slug", "use lowercase letters, digits, '-' or '_'")
        if not name.strip():
            raise InputError("name", "must not be empty")
        with self.db.write() as conn:
            if conn.execute(sa.select(A.c.id).where(A.c.slug == slug)).first():
                raise InputError("slug", f"account {slug!r} already exists")
            res = conn.execute(
                sa.insert(A).returning(A.c.id),
                {"slug": slug, "name": name.strip(), "created_at": self.clock()},
            )
            account_id = int(res.scalar_one())
        self._accounts[slug] = account_id
        return account_id

    def account_id(self, slug: str) -> int:
        aid = self._accounts.get(slug)
        if aid is None:
            with self.db.read() as conn:
                row = conn.execute(sa.select(A.c.id).where(A.c.slug == slug)).first()
            if row is None:
                raise NotFound("account", slug)
            aid = self._accounts[slug] = int(row.id)
        return aid

    def account_slug(self, account_id: int) -> str:
        for slug, aid in self._accounts.items():
            if aid == account_id:
                return slug
        with self.db.read() as conn:
            row = conn.execute(sa.select(A.c.slug).where(A.c.id == account_id)).first()
        if row is None:
            raise NotFound("account", account_id)
        self._accounts[row.slug] = account_id
        return str(row.slug)

    # --- creating ------------------------------------------------------------------------
    def create_ticket(
        self,
        *,
        account: str,
        kind: str,
        category: str,
        subject: str,
        channel: str,
        description: str = "",
        complexity: str | None = None,
        urgency: str | None = None,
        customer_name: str | None = None,
        customer_email: str | None = None,
        received_at: datetime | None = None,
        actor: str | None = None,
        role: str = "integration",
        workflow: str = "support",
        idempotency: Idempotency | None = None,
    ) -> TicketView:
        definition = self.definition(workflow)
        now = self.clock()
        spec = definition.spec
        if kind not in spec.kinds:
            raise InputError("kind", f"unknown kind {kind!r} (known: {', '.join(spec.kinds)})")
        if definition.category(kind, category) is None:
            known = ", ".join(spec.kinds[kind].categories)
            raise InputError("category", f"unknown {kind} category {category!r} (known: {known})")
        _check_choice("channel", channel, spec.channels)
        if complexity is not None:
            _check_choice("complexity", complexity, spec.complexity)
        if urgency is not None:
            _check_choice("urgency", urgency, spec.urgency)
        if not subject.strip():
            raise InputError("subject", "must not be empty")
        if received_at is None:
            received_at = now
        elif received_at.tzinfo is None:
            raise InputError("received_at", "must carry a UTC offset (ISO 8601 with offset)")
        elif received_at > now:
            raise InputError("received_at", f"{received_at.isoformat()} is in the future")
        received_at = received_at.astimezone(UTC)
        account_id = self.account_id(account)
        event = EventRecord(
            kind="created",
            at=now,
            to_state=spec.initial,
            changes={
                "kind": kind,
                "category": category,
                "channel": channel,
                "complexity": complexity,
                "urgency": urgency,
                "received_at": received_at.isoformat(),
            },
        )
        state = apply(definition, None, event)
        with self.db.write() as conn:
            if idempotency is not None:
                done = self._idempotent(conn, account_id, idempotency)
                if done is not None:
                    return self._view_at(conn, account, done[0], done[1])
            row = {
                "account_id": account_id,
                "workflow": definition.name,
                "definition_hash": definition.hash,
                "subject": subject.strip(),
                "description": description,
                "customer_name": customer_name,
                "customer_email": customer_email,
                "created_at": now,
                "updated_at": now,
                **state.as_columns(),
            }
            ticket_id = int(conn.execute(sa.insert(T).returning(T.c.id), row).scalar_one())
            self._insert_events(conn, ticket_id, account_id, [(event, None)], 0, actor, role)
            if idempotency is not None:
                self._remember(conn, account_id, idempotency, ticket_id, state.version, now)
        view = self._view(account, {**row, "id": ticket_id}, definition, state, now)
        self._notify(view, [event])
        return view

    # --- reading -------------------------------------------------------------------------
    def get_ticket(self, *, account: str, ticket_id: int) -> TicketView:
        account_id = self.account_id(account)
        with self.db.read() as conn:
            row = self._load(conn, account_id, ticket_id)
        d = self._definition_by_hash(row["definition_hash"])
        return self._view(account, row, d, _state_of(row), self.clock())

    def events(self, *, account: str, ticket_id: int) -> list[EventView]:
        account_id = self.account_id(account)
        with self.db.read() as conn:
            self._load(conn, account_id, ticket_id)
            rows = conn.execute(
                sa.select(E).where(E.c.ticket_id == ticket_id).order_by(E.c.seq)
            ).mappings()
            return [
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
                )
                for r in rows
            ]

    def list_tickets(
        self,
        *,
        account: str,
        state: str | None = None,
        level: str | None = None,
        priority: str | None = None,
        category: str | None = None,
        sla: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[TicketView], str | None]:
        """One page, oldest ticket first; ``cursor`` is the previous page's ``next_cursor``."""
        if not 1 <= limit <= 500:
            raise InputError("limit", "must be between 1 and 500")
        account_id = self.account_id(account)
        now = self.clock()
        q = sa.select(T).where(T.c.account_id == account_id)
        for col, value in (
            ("state", state),
            ("level", level),
            ("priority", priority),
            ("category", category),
        ):
            if value is not None:
                q = q.where(T.c[col] == value)
        if sla == "breached":
            q = q.where(sa.or_(T.c.sla_breached_at.is_not(None), T.c.sla_due_at <= now))
        elif sla == "at_risk":
            q = q.where(T.c.sla_breached_at.is_(None), T.c.sla_risk_at <= now, T.c.sla_due_at > now)
        elif sla is not None:
            raise InputError("sla", f"unknown filter {sla!r} (known: breached, at_risk)")
        if cursor is not None:
            q = q.where(T.c.id > _decode_cursor(cursor))
        rows = [dict(r) for r in self._read_all(q.order_by(T.c.id).limit(limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            self._view(
                account, r, self._definition_by_hash(r["definition_hash"]), _state_of(r), now
            )
            for r in rows
        ]
        next_cursor = _encode_cursor(rows[-1]["id"]) if more and rows else None
        return items, next_cursor

    def queue(self, *, account: str, level: str | None = None, limit: int = 50) -> list[TicketView]:
        """Open tickets by priority (highest first), then the earliest due instant, then age."""
        account_id = self.account_id(account)
        now = self.clock()
        q = sa.select(T).where(T.c.account_id == account_id, T.c.resolved_at.is_(None))
        if level is not None:
            q = q.where(T.c.level == level)
        q = q.order_by(
            T.c.priority.is_(None),
            T.c.priority,
            T.c.sla_due_at.is_(None),
            T.c.sla_due_at,
            T.c.received_at,
            T.c.id,
        ).limit(limit)
        return [
            self._view(
                account, dict(r), self._definition_by_hash(r["definition_hash"]), _state_of(r), now
            )
            for r in self._read_all(q)
        ]

    def explain(self, *, account: str, ticket_id: int, role: str) -> list[Option]:
        view = self.get_ticket(account=account, ticket_id=ticket_id)
        d = self._definition_by_hash(view.definition_hash)
        return machine_for(d).explain(view.current, role, self.clock())

    # --- units of work -------------------------------------------------------------------
    def fire(
        self,
        *,
        account: str,
        ticket_id: int,
        trigger: str,
        role: str,
        actor: str | None = None,
        note: str | None = None,
        data: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> TicketView:
        data = dict(data or {})

        def decide(ticket: TicketState, d: Definition, now: datetime) -> _Decision:
            fired = machine_for(d).fire(ticket, trigger, role=role, now=now, note=note, data=data)
            return _Decision([(_transition_event(ticket, fired, trigger, now, data), note)])

        return self._unit(account, ticket_id, decide, actor, role, expected_version, idempotency)[0]

    def respond(
        self,
        *,
        account: str,
        ticket_id: int,
        body: str,
        role: str,
        actor: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> TicketView:
        """A staff reply to the customer (stops the first-response clock if it is the first)."""
        if not body.strip():
            raise InputError("body", "must not be empty")

        def decide(ticket: TicketState, d: Definition, now: datetime) -> _Decision:
            self._require_staff(d, role, "respond to the customer")
            if d.is_final(ticket.state):
                raise InvalidTransition(
                    "respond", ticket.state, [], f"the ticket is {ticket.state} (final)"
                )
            event = EventRecord(kind="response", at=now, response=True)
            return _Decision([(event, body)])

        return self._unit(account, ticket_id, decide, actor, role, expected_version, idempotency)[0]

    def update_fields(
        self,
        *,
        account: str,
        ticket_id: int,
        role: str,
        actor: str | None = None,
        complexity: str | None = None,
        urgency: str | None = None,
        category: str | None = None,
        note: str | None = None,
        expected_version: int | None = None,
    ) -> TicketView:
        """Set complexity / urgency (priority follows the matrix) or re-categorise."""

        def decide(ticket: TicketState, d: Definition, now: datetime) -> _Decision:
            self._require_staff(d, role, "update ticket fields")
            spec = d.spec
            changes: dict[str, Any] = {}
            if complexity is not None:
                _check_choice("complexity", complexity, spec.complexity)
                changes["complexity"] = complexity
            if urgency is not None:
                _check_choice("urgency", urgency, spec.urgency)
                changes["urgency"] = urgency
            if category is not None:
                if d.category(ticket.kind, category) is None:
                    known = ", ".join(spec.kinds[ticket.kind].categories)
                    raise InputError(
                        "category", f"unknown {ticket.kind} category {category!r} (known: {known})"
                    )
                changes["category"] = category
            if not changes:
                raise InputError("body", "nothing to update: give complexity, urgency or category")
            if d.is_final(ticket.state):
                raise InvalidTransition(
                    "update", ticket.state, [], f"the ticket is {ticket.state} (final)"
                )
            changes = {k: v for k, v in changes.items() if getattr(ticket, k) != v}
            if not changes:
                return _Decision([])
            return _Decision([(EventRecord(kind="field_update", at=now, changes=changes), note)])

        return self._unit(account, ticket_id, decide, actor, role, expected_version, None)[0]

    def record_playbook_step(
        self,
        *,
        account: str,
        ticket_id: int,
        step: str,
        outcome: str,
        role: str,
        actor: str | None = None,
        note: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> TicketView:
        """Record the next playbook step as ``failed`` or ``solved`` (solved fires on_solved)."""
        if outcome not in ("failed", "solved"):
            raise InputError("outcome", f"must be failed or solved (got {outcome!r})")

        def decide(ticket: TicketState, d: Definition, now: datetime) -> _Decision:
            pb = d.spec.playbook
            if pb is None:
                raise InputError("step", f"workflow {d.name!r} defines no playbook")
            allowed = d.expand_roles(pb.roles)
            if role != ADMIN and role not in allowed:
                raise Forbidden(role, "record playbook steps", sorted(allowed))
            if ticket.state != pb.state:
                raise InvalidTransition(
                    "playbook_step",
                    ticket.state,
                    list(d.by_state[ticket.state]),
                    f"playbook steps are recorded in state {pb.state!r}, not {ticket.state!r}",
                )
            cat = d.category(ticket.kind, ticket.category)
            steps = cat.playbook if cat else []
            ids = [s.id for s in steps]
            if step not in ids:
                raise InputError(
                    "step",
                    f"{step!r} is not a step of the {ticket.category!r} playbook "
                    f"(steps: {', '.join(ids) or 'none'})",
                )
            index = ids.index(step)
            pos = ticket.playbook_position
            if index != pos:
                if index < pos:
                    why = f"step {index + 1} ({step}) was already recorded"
                elif pos < len(steps):
                    why = (
                        f"playbook step {pos + 1} of {len(steps)} ({ids[pos]}) not tried yet; "
                        "steps are recorded in order"
                    )
                else:
                    why = "every step is already recorded"
                raise InputError("step", why)
            event = EventRecord(
                kind="playbook_step",
                at=now,
                data={"step": step, "index": index + 1, "outcome": outcome},
            )
            out = [(event, note)]
            if outcome == "solved":
                after = apply(d, ticket, event)
                resolution = note or f"solved by playbook step {index + 1}: {steps[index].title}"
                fired = machine_for(d).fire(
                    after, pb.on_solved, role=ADMIN, now=now, note=resolution, data={}
                )
                data = {"playbook_step": step}
                out.append((_transition_event(after, fired, pb.on_solved, now, data), resolution))
            return _Decision(out)

        return self._unit(account, ticket_id, decide, actor, role, expected_version, idempotency)[0]

    def scan_sla(self, *, limit: int = 1000) -> int:
        """Record one ``sla_breached`` event per running clock past due; returns how many tickets
        got one. Safe to run on several servers at once: each breach lands exactly once (the
        compare-and-set on the ticket's version decides, and a recorded clock is not due again).
        """
        with self.db.exclusive("tierflow:sla-scan") as mine:
            return self._scan_sla(limit) if mine else 0

    def _scan_sla(self, limit: int) -> int:
        now = self.clock()
        touched = 0
        while True:
            with self.db.read() as conn:
                rows = conn.execute(
                    sa.select(T.c.id, T.c.account_id)
                    .where(T.c.sla_due_at <= now)
                    .order_by(T.c.sla_due_at, T.c.id)
                    .limit(limit)
                ).all()
            progressed = 0
            for r in rows:
                _view, written = self._unit(
                    self.account_slug(r.account_id),
                    r.id,
                    lambda *_: _Decision([]),
                    None,
                    "system",
                    None,
                    None,
                )
                progressed += int(written > 0)
            touched += progressed
            if len(rows) < limit or not progressed:
                return touched

    def close_expired(self, *, limit: int = 1000) -> int:
        """Fire each definition's ``auto_close`` trigger on tickets that stayed in its state for
        ``after_days``; returns how many were closed. One runner at a time across servers."""
        with self.db.exclusive("tierflow:auto-close") as mine:
            return self._close_expired(limit) if mine else 0

    def _close_expired(self, limit: int) -> int:
        now = self.clock()
        rules = [d.spec.auto_close for d in self._by_hash.values() if d.spec.auto_close]
        if not rules:
            return 0
        states = sorted({r.state for r in rules})
        oldest = now - timedelta(days=min(r.after_days for r in rules))

        def decide(ticket: TicketState, d: Definition, now: datetime) -> _Decision:
            rule = d.spec.auto_close
            if (
                rule is None
                or ticket.state != rule.state
                or now - ticket.state_entered_at < timedelta(days=rule.after_days)
            ):
                return _Decision([])  # moved on, or another rule, since we looked
            fired = machine_for(d).fire(ticket, rule.trigger, role=ADMIN, now=now)
            note = f"closed automatically after {rule.after_days:g} days in {rule.state}"
            return _Decision([(_transition_event(ticket, fired, rule.trigger, now, {}), note)])

        closed = 0
        after_id = 0
        while True:
            with self.db.read() as conn:
                rows = conn.execute(
                    sa.select(T.c.id, T.c.account_id)
                    .where(T.c.state.in_(states), T.c.state_entered_at <= oldest, T.c.id > after_id)
                    .order_by(T.c.id)
                    .limit(limit)
                ).all()
            for r in rows:
                try:
                    _view, written = self._unit(
                        self.account_slug(r.account_id),
                        r.id,
                        decide,
                        "auto-close",
                        "system",
                        None,
                        None,
                    )
                except TierflowError as exc:  # a guard on the close trigger: leave it open
                    log.warning("auto-close skipped ticket %s: %s", r.id, exc.detail)
                    continue
                closed += int(written > 0)
            if len(rows) < limit:
                return closed
            after_id = rows[-1].id

    # --- integrity -----------------------------------------------------------------------
    def check(self, *, batch: int = 500) -> list[str]:
        """Replay every ticket's history and compare it with the stored ticket."""
        problems: list[str] = []
        last = 0
        while True:
            with self.db.read() as conn:
                tickets = [
                    dict(r)
                    for r in conn.execute(
                        sa.select(T).where(T.c.id > last).order_by(T.c.id).limit(batch)
                    ).mappings()
                ]
                if not tickets:
                    return problems
                ids = [t["id"] for t in tickets]
                events: dict[int, list[RowMapping]] = {i: [] for i in ids}
                for e in conn.execute(
                    sa.select(E).where(E.c.ticket_id.in_(ids)).order_by(E.c.ticket_id, E.c.seq)
                ).mappings():
                    events[e["ticket_id"]].append(e)
            for t in tickets:
                problems.extend(self._check_one(t, events[t["id"]]))
            last = ids[-1]

    def _check_one(self, row: dict[str, Any], events: list[RowMapping]) -> list[str]:
        tid = row["id"]
        seqs = [e["seq"] for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            return [f"ticket {tid}: event seq {seqs} is not 1..{len(seqs)}"]
        try:
            d = self._definition_by_hash(row["definition_hash"])
            replayed = replay(d, (_record_of(e) for e in events))
        except Exception as exc:  # a history that cannot be replayed is exactly what we look for
            return [f"ticket {tid}: history does not replay: {exc}"]
        stored = _state_of(row)
        diffs = [
            f"{name} stored {getattr(stored, name)!r} != replayed {getattr(replayed, name)!r}"
            for name in (*_STATE_FIELDS, "sla")
            if getattr(stored, name) != getattr(replayed, name)
        ]
        return [f"ticket {tid}: {d}" for d in diffs]

    # --- internals -----------------------------------------------------------------------
    def _unit(
        self,
        account: str,
        ticket_id: int,
        decide: Callable[[TicketState, Definition, datetime], _Decision],
        actor: str | None,
        role: str,
        expected_version: int | None,
        idempotency: Idempotency | None,
    ) -> tuple[TicketView, int]:
        """Run ``decide`` in one transaction; returns the ticket and how many events it wrote."""
        account_id = self.account_id(account)
        for _attempt in range(MAX_ATTEMPTS):
            with self.db.write() as conn:
                if idempotency is not None:
                    done = self._idempotent(conn, account_id, idempotency)
                    if done is not None:
                        if done[0] != ticket_id:
                            raise IdempotencyMismatch(idempotency.key)
                        return self._view_at(conn, account, ticket_id, done[1]), 0
                row = self._load(conn, account_id, ticket_id)
                if expected_version is not None and row["version"] != expected_version:
                    raise VersionMismatch(expected_version, row["version"])
                d = self._definition_by_hash(row["definition_hash"])
                ticket = _state_of(row)
                now = self.clock()
                decided = decide(ticket, d, now).events
                # a clock that ran out before this moment gets its breach recorded first
                pending = [
                    (EventRecord(kind="sla_breached", at=now, data={"clock": c}), None)
                    for c in due_breaches(ticket, now)
                ]
                todo = pending + decided
                if not todo:
                    return self._view(account, row, d, ticket, now), 0
                new = ticket
                for event, _note in todo:
                    new = apply(d, new, event)
                values = {**new.as_columns(), "updated_at": now}
                res = conn.execute(
                    sa.update(T)
                    .where(T.c.id == ticket_id, T.c.version == ticket.version)
                    .values(**values)
                )
                if res.rowcount != 1:  # somebody else committed first: decide again
                    lost = True
                else:
                    lost = False
                    self._insert_events(
                        conn, ticket_id, account_id, todo, ticket.version, actor, role
                    )
                    if idempotency is not None:
                        self._remember(conn, account_id, idempotency, ticket_id, new.version, now)
            if lost:
                if expected_version is not None:
                    raise VersionMismatch(expected_version, self._current_version(ticket_id))
                continue
            view = self._view(account, {**row, "updated_at": now}, d, new, now)
            self._notify(view, [e for e, _note in todo])
            return view, len(todo)
        raise Conflict(ticket_id, MAX_ATTEMPTS)

    def _notify(self, view: TicketView, events: list[EventRecord]) -> None:
        for observe in self.observers:
            observe(view, events)

    def _insert_events(
        self,
        conn: Connection,
        ticket_id: int,
        account_id: int,
        events: list[tuple[EventRecord, str | None]],
        version: int,
        actor: str | None,
        role: str,
    ) -> None:
        rows = []
        for i, (e, note) in enumerate(events, start=1):
            system = e.kind == "sla_breached"
            rows.append(
                {
                    "ticket_id": ticket_id,
                    "account_id": account_id,
                    "seq": version + i,
                    "kind": e.kind,
                    "trigger": e.trigger,
                    "from_state": e.from_state,
                    "to_state": e.to_state,
                    "actor": "sla-scanner" if system else actor,
                    "role": "system" if system else role,
                    "note": note,
                    "data": dict(e.data),
                    "changes": dict(e.changes),
                    "response": e.response,
                    "at": e.at,
                }
            )
        conn.execute(sa.insert(E), rows)

    def _load(self, conn: Connection, account_id: int, ticket_id: int) -> dict[str, Any]:
        row = (
            conn.execute(sa.select(T).where(T.c.id == ticket_id, T.c.account_id == account_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound("ticket", ticket_id)
        return dict(row)

    def _read_all(self, q: Any) -> list[RowMapping]:
        with self.db.read() as conn:
            return list(conn.execute(q).mappings())

    def _current_version(self, ticket_id: int) -> int:
        with self.db.read() as conn:
            return int(conn.execute(sa.select(T.c.version).where(T.c.id == ticket_id)).scalar_one())

    def _require_staff(self, d: Definition, role: str, action: str) -> None:
        if role != ADMIN and role not in d.staff_roles:
            raise Forbidden(role, action, sorted(d.staff_roles))

    def _idempotent(
        self, conn: Connection, account_id: int, idem: Idempotency
    ) -> tuple[int, int] | None:
        row = conn.execute(
            sa.select(IDEM.c.fingerprint, IDEM.c.ticket_id, IDEM.c.version).where(
                IDEM.c.account_id == account_id, IDEM.c.key == idem.key
            )
        ).first()
        if row is None:
            return None
        if row.fingerprint != idem.fingerprint:
            raise IdempotencyMismatch(idem.key)
        return int(row.ticket_id), int(row.version)

    def _remember(
        self,
        conn: Connection,
        account_id: int,
        idem: Idempotency,
        ticket_id: int,
        version: int,
        now: datetime,
    ) -> None:
        conn.execute(
            sa.insert(IDEM),
            {
                "account_id": account_id,
                "key": idem.key,
                "fingerprint": idem.fingerprint,
                "ticket_id": ticket_id,
                "version": version,
                "created_at": now,
            },
        )

    def _view_at(self, conn: Connection, account: str, ticket_id: int, version: int) -> TicketView:
        """The ticket as it was right after ``version`` (rebuilt from history)."""
        row = dict(conn.execute(sa.select(T).where(T.c.id == ticket_id)).mappings().one())
        d = self._definition_by_hash(row["definition_hash"])
        evs = (
            conn.execute(
                sa.select(E).where(E.c.ticket_id == ticket_id, E.c.seq <= version).order_by(E.c.seq)
            )
            .mappings()
            .all()
        )
        state = replay(d, (_record_of(e) for e in evs))
        at = evs[-1]["at"]
        return self._view(account, {**row, "updated_at": at}, d, state, at, replayed=True)

    def _view(
        self,
        account: str,
        row: Mapping[str, Any],
        d: Definition,
        state: TicketState,
        now: datetime,
        *,
        replayed: bool = False,
    ) -> TicketView:
        return TicketView(
            id=row["id"],
            account=account,
            workflow=d.name,
            workflow_version=d.version,
            definition_hash=d.hash,
            subject=row["subject"],
            description=row["description"],
            customer_name=row["customer_name"],
            customer_email=row["customer_email"],
            current=state,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            sla={name: clock_report(d, c, now) for name, c in state.sla.clocks.items()},
            replayed=replayed,
        )


def _transition_event(
    ticket: TicketState, fired: Fired, trigger: str, now: datetime, data: Mapping[str, Any]
) -> EventRecord:
    return EventRecord(
        kind="transition",
        at=now,
        trigger=trigger,
        from_state=ticket.state,
        to_state=fired.dest,
        changes=fired.changes,
        data=data,
        response=fired.transition.response,
    )


def _state_of(row: Mapping[str, Any] | RowMapping) -> TicketState:
    values = {name: row[name] for name in _STATE_FIELDS}
    sla = SlaFields.from_columns(
        row["sla_state"], row["sla_due_at"], row["sla_risk_at"], row["sla_breached_at"]
    )
    return TicketState(**values, sla=sla)


def _record_of(e: Mapping[str, Any] | RowMapping) -> EventRecord:
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


def _check_choice(field: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise InputError(field, f"unknown {field} {value!r} (known: {', '.join(allowed)})")


def _encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"t:{ticket_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = raw.split(":", 1)
        if prefix != "t":
            raise ValueError(prefix)
        return int(value)
    except ValueError:
        raise InputError("cursor", "not a cursor this service returned") from None
