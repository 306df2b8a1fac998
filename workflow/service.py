"""Units of work: create a ticket, fire a trigger, respond, update fields, record a step.

Each unit of work is one transaction: read the ticket, decide with the definition's machine,
fold the resulting event(s) with :func:`workflow.history.apply`, then compare-and-set the ticket
on its ``version`` and append the event rows. A refusal raises before anything is written; a
lost race is retried a bounded number of times (or reported as :class:`VersionMismatch` when the
caller named the version it expected). The hot path's statements are SQLAlchemy Core,
prepared once per dialect (:mod:`workflow.prepared`).

:class:`Tierflow` is the engine's one entry point; its read side lives in
:mod:`workflow.queries`, its background jobs in :mod:`workflow.jobs`, the replay check in
:mod:`workflow.integrity`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import counts, integrity, jobs, outbox, people, queries, settings
from . import migrate as migration
from .access import EVERYTHING, INTERNAL, Viewer, check_visibility, sees_ticket
from .assignment import acting_roles
from .db import Database
from .definition import Definition, builtin_definitions, check_text, folder_definitions
from .errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InputError,
    InvalidTransition,
    NotFound,
    VersionMismatch,
    VersionTaken,
)
from .history import EventRecord, TicketState, apply, fold
from .machine import ADMIN, machine_for
from .prepared import Prepared
from .records import (
    IDEM,
    A,
    Decision,
    E,
    Idempotency,
    T,
    TicketView,
    check_choice,
    record_of,
    state_of,
    take_number,
    transition_event,
    utcnow,
)
from .registry import DefinitionRegistry, Published, StoredVersion
from .sla import clock_report, due_breaches

__all__ = ["MAX_ATTEMPTS", "Clock", "Observer", "Tierflow"]

log = logging.getLogger("tierflow")

MAX_ID = 2**31 - 1
"""Ticket ids (an account's ticket numbers) are 32-bit integers on every backend."""

Clock = Callable[[], datetime]
Observer = Callable[[TicketView, list[EventRecord]], None]
"""Called after a unit of work committed, with the ticket and the events it appended."""
EARLIEST = datetime(1970, 1, 2)
"""``received_at`` before this (local wall time) is refused as implausible."""
DEFAULT_MAX_RECEIVED_AGE = timedelta(days=400)
"""``received_at`` further back than this before now is refused (``max_received_age``)."""
MAX_ATTEMPTS = 8
FOLDS_KEPT = 4096
"""Tickets whose last rebuilt version :meth:`Tierflow._view_at` keeps, to fold on from."""
"""How often a unit of work that lost a race is retried before :class:`Conflict`."""
RETRYABLE = {"40P01", "40001"}
"""SQLSTATEs after which a transaction is simply tried again (deadlock, serialization)."""

# The hot path's statements are built once (building a statement and its cache key costs
# SQLAlchemy about as much as executing it) and run on the DBAPI cursor, through
# workflow.prepared (SQLAlchemy's execution layer costs several times what SQLite takes to
# run them). Measured in bench/FINDINGS.md.
_LOAD = Prepared(
    sa.select(T).where(
        T.c.account_id == sa.bindparam("b_account"), T.c.number == sa.bindparam("b_number")
    )
)
_LOAD_OWN = Prepared(
    sa.select(T).where(
        T.c.number == sa.bindparam("b_number"),
        T.c.account_id == sa.bindparam("b_account"),
        T.c.requester_id == sa.bindparam("b_requester"),
    )
)
"""A requester's ticket: only if they requested it (workflow.access)."""
_TICKET = sa.select(T).where(T.c.id == sa.bindparam("b_id"))
_TICKETS = sa.select(T).where(T.c.id.in_(sa.bindparam("b_ids", expanding=True)))
_HISTORY = sa.select(E).where(E.c.ticket_id == sa.bindparam("b_id")).order_by(E.c.seq)
_HISTORY_SPAN = (
    sa.select(E)
    .where(
        E.c.ticket_id == sa.bindparam("b_id"),
        E.c.seq > sa.bindparam("b_after"),
        E.c.seq <= sa.bindparam("b_upto"),
    )
    .order_by(E.c.seq)
)
"""A ticket's row, its history, a stretch of it (``_view_at``: the outbox's readers)."""


@functools.lru_cache(maxsize=256)
def _cas(columns: tuple[str, ...]) -> Prepared:
    """Compare-and-set UPDATE of ``columns`` where (id, version) match, bound by name. Only
    the columns a unit of work changed are set: every column would rewrite every index."""
    return Prepared(
        sa.update(T)
        .where(T.c.id == sa.bindparam("b_id"), T.c.version == sa.bindparam("b_version"))
        .values({c: sa.bindparam(c) for c in columns})
    )


class Tierflow:
    """The engine over one database: definitions, tickets, units of work.

    Every method takes keyword arguments only; ``account`` is an account slug. A ticket's id
    (``ticket_id``, :attr:`TicketView.id`) is its number within its account (1, 2, 3, ...);
    the table's primary key stays internal.
    """

    def __init__(
        self,
        database: Database | str | None = None,
        *,
        definitions: list[Definition] | None = None,
        clock: Clock = utcnow,
        definitions_dir: str | Path | None = None,
        create_schema: bool = True,
        max_received_age: timedelta | None = DEFAULT_MAX_RECEIVED_AGE,
    ) -> None:
        self.db = database if isinstance(database, Database) else Database(database)
        self.clock = clock
        self.max_received_age = max_received_age
        """How far before now a ticket's ``received_at`` may lie (None: back to 1970)."""
        if create_schema:  # bring the schema to the newest migration (idempotent)
            from .schema import upgrade

            upgrade(self.db)
        self.registry = DefinitionRegistry(self.db, clock)
        self._accounts: dict[str, int] = {}  # slug -> id (accounts never change)
        self._slugs: dict[int, str] = {}  # id -> slug
        self._calendars: dict[int, tuple[Any, float]] = {}  # account id -> (calendar, read at)
        self.observers: list[Observer] = []
        self._folds: OrderedDict[int, tuple[int, TicketState, Definition, datetime]] = (
            OrderedDict()
        )  # the last version folded per ticket (see _view_at)
        self._folds_lock = threading.Lock()
        self.start_warnings: list[str] = []
        """Definitions given at start that were not published (their version is taken)."""
        start = list(definitions if definitions is not None else builtin_definitions())
        if definitions_dir is not None:
            start.extend(folder_definitions(definitions_dir))
        for d in start:
            try:
                self.publish(d)
            except VersionTaken as exc:
                warning = f"{d.name} {d.version} from {_origin(d)} not published: {exc.detail}"
                log.warning("%s", warning)
                self.start_warnings.append(warning)

    # --- definitions ---------------------------------------------------------------------
    def publish(self, definition: Definition) -> Published:
        """Publish ``definition`` (immutable from now on; the latest of its name if new).
        The same content again answers the same, ``created`` False; another content under a
        published version raises :class:`VersionTaken`."""
        return self.registry.publish(definition)

    def register(self, definition: Definition) -> None:
        """Publish ``definition`` (kept for embedders; see :meth:`publish`)."""
        self.publish(definition)

    def publish_text(
        self, text: str, *, name: str | None = None, source: str = "body"
    ) -> Published:
        """Validate YAML ``text`` (every problem at once, with lines) and publish it. ``name``,
        when given, must be the definition's name."""
        return self.publish(check_text(text, name=name, source=source))

    def validate_text(
        self, text: str, *, name: str | None = None, source: str = "body"
    ) -> tuple[Definition, bool]:
        """What :meth:`publish_text` would answer, storing nothing: the definition and whether
        publishing would store it (False: that content is published already)."""
        d = check_text(text, name=name, source=source)
        return d, self.registry.check_publishable(d)

    def definitions(self) -> list[Definition]:
        """The latest published version of every workflow."""
        return self.registry.current()

    def definition(self, name: str, version: str | None = None) -> Definition:
        """The latest definition of ``name``, or the one with that human version or hash."""
        return self.registry.get(name, version)

    def versions(self, name: str) -> list[tuple[str, str, datetime]]:
        """(human version, hash, first published) of every version of ``name``, newest first."""
        return self.registry.versions(name)

    def published(self, name: str | None = None) -> list[StoredVersion]:
        """Every published version (of ``name``), newest first."""
        return self.registry.stored(name)

    def account_workflow(
        self, *, account: str, workflow: str = "support"
    ) -> tuple[Definition, bool]:
        """The version of ``workflow`` the account's new tickets get, and whether the account
        chose it (False: it follows the latest published)."""
        account_id = self.account_id(account)
        self.registry.latest(workflow)  # NotFound for an unknown workflow
        chosen = self.registry.chosen(account_id, workflow) is not None
        return self.registry.for_account(account_id, workflow), chosen

    def choose_workflow(
        self, *, account: str, workflow: str, version: str | None
    ) -> tuple[Definition, bool]:
        """Give the account's new tickets ``version`` (human version or hash) of ``workflow``;
        None: the latest published, whichever that is at the time. Tickets keep theirs."""
        account_id = self.account_id(account)  # the path's account: NotFound is a 404
        try:
            d = self.registry.choose(account_id, workflow, version)
        except NotFound as exc:  # the body names what is not published: a 422 naming the field
            field = "version" if exc.what == "workflow version" else "name"
            raise InputError(field, str(exc)) from None
        return d, version is not None

    # --- accounts ------------------------------------------------------------------------
    def create_account(self, *, slug: str, name: str) -> int:
        if not slug or not slug.replace("-", "").replace("_", "").isalnum() or slug != slug.lower():
            raise InputError("slug", "use lowercase letters, digits, '-' or '_'")
        if not name.strip():
            raise InputError("name", "must not be empty")
        with self.db.write() as conn:
            if conn.execute(sa.select(A.c.id).where(A.c.slug == slug)).first():
                raise AlreadyExists("slug", f"account {slug!r} already exists")
            res = conn.execute(
                sa.insert(A).returning(A.c.id),
                {"slug": slug, "name": name.strip(), "created_at": self.clock()},
            )
            account_id = int(res.scalar_one())
        self._accounts[slug] = account_id
        self._slugs[account_id] = slug
        return account_id

    def account_id(self, slug: str) -> int:
        aid = self._accounts.get(slug)
        if aid is None:
            with self.db.read() as conn:
                row = conn.execute(sa.select(A.c.id).where(A.c.slug == slug)).first()
            if row is None:
                raise NotFound("account", slug)
            aid = self._accounts[slug] = int(row.id)
            self._slugs[aid] = slug
        return aid

    def account_slug(self, account_id: int) -> str:
        slug = self._slugs.get(account_id)
        if slug is None:
            with self.db.read() as conn:
                row = conn.execute(sa.select(A.c.slug).where(A.c.id == account_id)).first()
            if row is None:
                raise NotFound("account", account_id)
            slug = self._slugs[account_id] = str(row.slug)
            self._accounts[slug] = account_id
        self._slugs[account_id] = slug
        return slug

    account_settings = settings.settings
    update_account = settings.update_account

    # --- people (workflow.people) ----------------------------------------------------------
    create_user = people.create_user
    get_user = people.get_user
    users = people.users

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
        requester_id: int | None = None,
        received_at: datetime | None = None,
        actor: str | None = None,
        role: str = "integration",
        workflow: str = "support",
        idempotency: Idempotency | None = None,
    ) -> TicketView:
        account_id = self.account_id(account)
        definition = self.registry.for_account(account_id, workflow)
        calendar = settings.account_calendar(self, account_id)
        if calendar is not None:  # the account's calendar, pinned on the ticket
            definition = self.registry.with_calendar(definition, calendar)
        now = self.clock()
        spec = definition.spec
        if kind not in spec.kinds:
            raise InputError("kind", f"unknown kind {kind!r} (known: {', '.join(spec.kinds)})")
        if definition.category(kind, category) is None:
            known = ", ".join(spec.kinds[kind].categories)
            raise InputError("category", f"unknown {kind} category {category!r} (known: {known})")
        check_choice("channel", channel, spec.channels)
        if complexity is not None:
            check_choice("complexity", complexity, spec.complexity)
        if urgency is not None:
            check_choice("urgency", urgency, spec.urgency)
        if not subject.strip():
            raise InputError("subject", "must not be empty")
        if received_at is None:
            received_at = now
        elif received_at.tzinfo is None:
            raise InputError("received_at", "must carry a UTC offset (ISO 8601 with offset)")
        elif received_at.replace(tzinfo=None) < EARLIEST:
            raise InputError("received_at", f"{received_at.isoformat()} is before 1970")
        elif received_at > now:
            raise InputError("received_at", f"{received_at.isoformat()} is in the future")
        elif self.max_received_age is not None and received_at < now - self.max_received_age:
            raise InputError(
                "received_at",
                f"{received_at.isoformat()} is more than {_age(self.max_received_age)} before "
                "now (the limit on received_at)",
            )
        received_at = received_at.astimezone(UTC)
        if requester_id is None and customer_email:
            requester_id = people.requester_for(
                self, account=account, name=customer_name or customer_email, email=customer_email
            )
        elif requester_id is not None:
            self.get_user(account=account, user_id=requester_id)  # of this account
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
                "number": take_number(conn, account_id, "last_ticket_number"),
                "workflow": definition.name,
                "definition_hash": definition.hash,
                "subject": subject.strip(),
                "description": description,
                "customer_name": customer_name,
                "customer_email": customer_email,
                "requester_id": requester_id,
                "created_at": now,
                "updated_at": now,
                **state.as_columns(),
            }
            ticket_id = int(conn.execute(sa.insert(T).returning(T.c.id), row).scalar_one())
            counts.apply_deltas(
                conn, account_id, definition.name, ticket_id, counts.deltas(None, state)
            )
            if idempotency is not None:
                self._remember(conn, account_id, idempotency, ticket_id, state.version, now)
            self._send(
                conn, account_id, ticket_id, state.version, [(event, None)], actor, role, INTERNAL
            )
        view = self._view(account, {**row, "id": ticket_id}, definition, state, now)
        self._notify(view, [event])
        return view

    # --- reading (workflow.queries; every read filtered by workflow.access) ---------------
    get_ticket = queries.get_ticket
    events = queries.events
    list_tickets = queries.list_tickets
    queue = queries.queue
    explain = queries.explain

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
        visibility: str | None = None,
        data: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        viewer: Viewer = EVERYTHING,
    ) -> TicketView:
        """Fire ``trigger``; ``note`` is ``visibility`` (default: internal, a customer's public)."""
        data = dict(data or {})
        shown = check_visibility(viewer, "transition", visibility)

        def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
            fired = machine_for(d).fire(ticket, trigger, role=role, now=now, note=note, data=data)
            return Decision([(transition_event(d, ticket, fired, trigger, now, data), note)])

        return self._unit(
            account, ticket_id, decide, actor, role, expected_version, idempotency, viewer, shown
        )[0]

    def respond(
        self,
        *,
        account: str,
        ticket_id: int,
        body: str,
        role: str,
        actor: str | None = None,
        visibility: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        viewer: Viewer = EVERYTHING,
    ) -> TicketView:
        """A staff reply to the customer (stops the first-response clock if it is the first).
        An ``internal`` reply is a note among staff: it stops no clock."""
        if not body.strip():
            raise InputError("body", "must not be empty")
        shown = check_visibility(viewer, "response", visibility)

        def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
            self._require_staff(d, role, "respond to the customer")
            _refuse_if_final(d, ticket, "respond")
            event = EventRecord(kind="response", at=now, response=shown != INTERNAL)
            return Decision([(event, body)])

        return self._unit(
            account, ticket_id, decide, actor, role, expected_version, idempotency, viewer, shown
        )[0]

    def comment(
        self,
        *,
        account: str,
        ticket_id: int,
        body: str,
        role: str,
        actor: str | None = None,
        visibility: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        viewer: Viewer = EVERYTHING,
    ) -> TicketView:
        """A comment on the ticket by anyone who sees it: a customer's is public (on their own
        ticket), staff's internal unless they say public. It moves no clock and no state."""
        if not body.strip():
            raise InputError("body", "must not be empty")
        shown = check_visibility(viewer, "comment", visibility)

        def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
            _refuse_if_final(d, ticket, "comment")
            return Decision([(EventRecord(kind="comment", at=now), body)])

        return self._unit(
            account, ticket_id, decide, actor, role, expected_version, idempotency, viewer, shown
        )[0]

    def assign(
        self,
        *,
        account: str,
        ticket_id: int,
        assignee_id: int | None,
        role: str,
        actor: str | None = None,
        expected_version: int | None = None,
        viewer: Viewer = EVERYTHING,
    ) -> TicketView:
        """Assign the ticket to a user holding a role that acts at its state, or (None) hand it
        back to the pool; staff only. Assigning whom it already has changes nothing."""
        user = None
        if assignee_id is not None:
            try:
                user = self.get_user(account=account, user_id=assignee_id)
            except NotFound:
                raise InputError(
                    "assignee_id", f"no user {assignee_id} in account {account!r}"
                ) from None

        def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
            self._require_staff(d, role, "assign tickets")
            allowed = acting_roles(d, ticket.state)
            if not allowed:
                raise InvalidTransition(
                    "assign", ticket.state, [], f"nobody works on a ticket in {ticket.state}"
                )
            if user is not None and not allowed & set(user.roles):
                raise InputError(
                    "assignee_id",
                    f"user {user.id} ({user.name}) holds {', '.join(user.roles)}; a ticket in "
                    f"{ticket.state} goes to one of: {', '.join(sorted(allowed))}",
                )
            if ticket.assignee_id == assignee_id:
                return Decision([])
            event = EventRecord(
                kind="assigned",
                at=now,
                changes={"assignee_id": assignee_id},
                data={"assignee": None if user is None else user.name},
            )
            return Decision([(event, None)])

        return self._unit(
            account, ticket_id, decide, actor, role, expected_version, None, viewer, INTERNAL
        )[0]

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
        visibility: str | None = None,
        expected_version: int | None = None,
        viewer: Viewer = EVERYTHING,
    ) -> TicketView:
        """Set complexity / urgency (priority follows the matrix) or re-categorise."""
        shown = check_visibility(viewer, "field_update", visibility)

        def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
            self._require_staff(d, role, "update ticket fields")
            spec = d.spec
            changes: dict[str, Any] = {}
            if complexity is not None:
                check_choice("complexity", complexity, spec.complexity)
                changes["complexity"] = complexity
            if urgency is not None:
                check_choice("urgency", urgency, spec.urgency)
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
            _refuse_if_final(d, ticket, "update")
            changes = {k: v for k, v in changes.items() if getattr(ticket, k) != v}
            if not changes:
                return Decision([])
            return Decision([(EventRecord(kind="field_update", at=now, changes=changes), note)])

        return self._unit(
            account, ticket_id, decide, actor, role, expected_version, None, viewer, shown
        )[0]

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
        visibility: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        viewer: Viewer = EVERYTHING,
    ) -> TicketView:
        """Record the next playbook step as ``failed`` or ``solved`` (solved fires on_solved)."""
        if outcome not in ("failed", "solved"):
            raise InputError("outcome", f"must be failed or solved (got {outcome!r})")
        shown = check_visibility(viewer, "playbook_step", visibility)

        def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
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
                event = transition_event(d, after, fired, pb.on_solved, now, data)
                out.append((event, resolution))
            return Decision(out)

        return self._unit(
            account, ticket_id, decide, actor, role, expected_version, idempotency, viewer, shown
        )[0]

    # --- background jobs (workflow.jobs) and integrity (workflow.integrity) ---------------
    scan_sla = jobs.scan_sla
    close_expired = jobs.close_expired
    check = integrity.check

    # --- moving open tickets to another version (workflow.migrate) -------------------------
    migrate = migration.migrate

    # --- internals -----------------------------------------------------------------------
    def _unit(
        self,
        account: str,
        ticket_id: int,
        decide: Callable[[TicketState, Definition, datetime], Decision],
        actor: str | None,
        role: str,
        expected_version: int | None,
        idempotency: Idempotency | None,
        viewer: Viewer = EVERYTHING,
        visibility: str = INTERNAL,
    ) -> tuple[TicketView, int]:
        """Run ``decide`` in one transaction; returns the ticket and how many events it wrote.
        ``viewer`` must see the ticket (else it is not found); the unit's notes are
        ``visibility``."""
        account_id = self.account_id(account)

        def run() -> tuple[TicketView, int]:  # tried again after a lost race
            for _attempt in range(MAX_ATTEMPTS):
                try:
                    outcome = self._attempt(
                        account,
                        account_id,
                        ticket_id,
                        decide,
                        actor,
                        role,
                        expected_version,
                        idempotency,
                        viewer,
                        visibility,
                    )
                except sa.exc.DBAPIError as exc:
                    if getattr(exc.orig, "sqlstate", None) not in RETRYABLE:
                        raise
                    continue  # a deadlock or serialization failure: nothing written, go again
                if outcome is not None:
                    return outcome
                if expected_version is not None:  # lost the race to the version it expected
                    current = self._current_version(account_id, ticket_id)
                    raise VersionMismatch(expected_version, current)
            raise Conflict(ticket_id, MAX_ATTEMPTS)

        # SQLite: with the units queued behind the writer, in one transaction (group commit)
        return self.db.serialised(run)

    def _attempt(
        self,
        account: str,
        account_id: int,
        ticket_id: int,
        decide: Callable[[TicketState, Definition, datetime], Decision],
        actor: str | None,
        role: str,
        expected_version: int | None,
        idempotency: Idempotency | None,
        viewer: Viewer,
        visibility: str,
    ) -> tuple[TicketView, int] | None:
        """One try of a unit of work; None when another writer changed the ticket first."""
        with self.db.write() as conn:
            if idempotency is not None:
                done = self._idempotent(conn, account_id, idempotency)
                if done is not None:
                    key = self._load(conn, account_id, ticket_id, viewer)["id"]  # still theirs
                    if done[0] != key:
                        raise IdempotencyMismatch(idempotency.key)
                    return self._view_at(conn, account, key, done[1]), 0
            row = self._load(conn, account_id, ticket_id, viewer)
            key = row["id"]  # the primary key: what the statements below address
            if expected_version is not None and row["version"] != expected_version:
                raise VersionMismatch(expected_version, row["version"])
            d = self.registry.by_hash(row["definition_hash"])
            ticket = state_of(row)
            now = self.clock()
            decision = decide(ticket, d, now)
            # a clock that ran out before this moment gets its breach recorded first
            pending = [
                (EventRecord(kind="sla_breached", at=now, data={"clock": c}), None)
                for c in due_breaches(ticket, now)
            ]
            todo = pending + decision.events
            if not todo:
                return self._view(account, row, d, ticket, now), 0
            new = ticket
            for event, _note in todo:
                if event.kind == "migrated" and decision.moves_to is not None:
                    new = apply(decision.moves_to, new, event, before=d)
                    d = decision.moves_to
                else:
                    new = apply(d, new, event)
            # only what differs from the stored row (unchanged columns would rewrite indexes)
            values = {k: v for k, v in new.as_columns().items() if row.get(k) != v}
            if d.hash != row["definition_hash"]:
                values["definition_hash"] = d.hash
            values["updated_at"] = now
            matched = _cas(tuple(values)).execute(
                conn, {**values, "b_id": key, "b_version": ticket.version}
            )
            if matched != 1:  # somebody else committed first: decide again
                return None
            with self.db.closing(conn):  # PostgreSQL: with the COMMIT, in one round trip
                counts.apply_deltas(
                    conn, account_id, row["workflow"], key, counts.deltas(ticket, new)
                )
                if idempotency is not None:
                    self._remember(conn, account_id, idempotency, key, new.version, now)
                self._send(conn, account_id, key, new.version, todo, actor, role, visibility)
        view = self._view(account, {**row, "updated_at": now}, d, new, now)
        self.db.after_commit(functools.partial(self._notify, view, [e for e, _note in todo]))
        return view, len(todo)

    def _notify(self, view: TicketView, events: list[EventRecord]) -> None:
        for observe in self.observers:
            observe(view, events)

    def _send(
        self,
        conn: Connection,
        account_id: int,
        ticket_id: int,
        version: int,
        events: list[tuple[EventRecord, str | None]],
        actor: str | None,
        role: str,
        visibility: str,
    ) -> None:
        """The unit's history rows, numbered as the account's outgoing events (the
        transactional outbox): its last statement."""
        outbox.append(
            conn,
            account_id,
            version,
            self._event_rows(
                ticket_id, account_id, events, version - len(events), actor, role, visibility
            ),
        )

    def _event_rows(
        self,
        ticket_id: int,
        account_id: int,
        events: list[tuple[EventRecord, str | None]],
        version: int,
        actor: str | None,
        role: str,
        visibility: str,
    ) -> list[dict[str, Any]]:
        """The history rows of a unit's ``events`` (the ticket at ``version`` before them)."""
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
                    "visibility": INTERNAL if system else visibility,
                    "at": e.at,
                    "sequence": None,
                    "unit_version": None,
                }
            )
        return rows

    def _load(
        self, conn: Connection, account_id: int, ticket_id: int, viewer: Viewer = EVERYTHING
    ) -> dict[str, Any]:
        """The row of the account's ticket number ``ticket_id``, if ``viewer`` may see it; else
        not found (as another account's). Every ticket id from outside resolves here."""
        if not 0 < ticket_id <= MAX_ID:  # beyond the id column: cannot exist
            raise NotFound("ticket", ticket_id)
        if viewer.own_only:
            row = _LOAD_OWN.first(
                conn,
                {"b_number": ticket_id, "b_account": account_id, "b_requester": viewer.user_id},
            )
        else:
            row = _LOAD.first(conn, {"b_number": ticket_id, "b_account": account_id})
        if row is None or not sees_ticket(viewer, row["requester_id"]):
            raise NotFound("ticket", ticket_id)
        return row

    def _current_version(self, account_id: int, ticket_id: int) -> int:
        with self.db.read() as conn:
            return int(
                conn.execute(
                    sa.select(T.c.version).where(
                        T.c.account_id == account_id, T.c.number == ticket_id
                    )
                ).scalar_one()
            )

    def _require_staff(self, d: Definition, role: str, action: str) -> None:
        if role != ADMIN and role not in d.staff_roles:
            raise Forbidden(role, action, sorted(d.staff_roles))

    def _idempotent(
        self, conn: Connection, account_id: int, idem: Idempotency
    ) -> tuple[int, int] | None:
        """The (ticket, version) a key already produced, or None. Holds the key's lock until
        the transaction ends, so concurrent requests with one key run one after the other."""
        self.db.lock_in_transaction(conn, f"idempotency:{account_id}:{idem.key}")
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
        """The ticket ``ticket_id`` (its primary key) as it was right after ``version`` (rebuilt
        from history, on the version of the workflow it ran on then).

        Readers of the outbox ask for each ticket's versions in increasing order, so the last
        fold per ticket is kept (a bounded cache) and the next one folds only the events after
        it: histories are append-only, so the result is that of a whole replay, which would
        cost time in proportion to the ticket's history for every event."""
        row = dict(conn.execute(_TICKET, {"b_id": ticket_id}).mappings().one())
        with self._folds_lock:
            cached = self._folds.get(ticket_id)
        if cached is None or cached[0] > version:
            evs = conn.execute(_HISTORY, {"b_id": ticket_id}).mappings().all()
            state, d = fold(
                self.registry.by_hash(row["definition_hash"]),
                [record_of(e) for e in evs],
                resolve=self.registry.by_hash,
                upto=version,
            )
            at = evs[version - 1]["at"]
        else:
            span = {"b_id": ticket_id, "b_after": cached[0], "b_upto": version}
            rows = conn.execute(_HISTORY_SPAN, span).mappings()
            _, state, d, at = self._fold_on(cached, rows, version)
        self._keep_fold(ticket_id, (version, state, d, at))
        return self._view(account, {**row, "updated_at": at}, d, state, at, replayed=True)

    def _views_at(
        self, conn: Connection, account: str, rows: Sequence[Any]
    ) -> dict[tuple[int, int], TicketView]:
        """The tickets of a batch of the outbox's history ``rows`` (whole rows, in sequence
        order), each as it was right after its row's unit: by (ticket, ``unit_version``).

        The batch's rows are the events to fold, so a ticket whose kept fold ends where its
        rows in the batch start is folded on over them, with its row read once for the whole
        batch (one query): no query per event. A ticket without such a fold, or a unit the
        batch cuts short, is rebuilt by :meth:`_view_at`."""
        by_ticket: dict[int, list[Any]] = {}
        for r in rows:
            by_ticket.setdefault(r["ticket_id"], []).append(r)
        if not by_ticket:
            return {}
        tickets = {
            t["id"]: t for t in conn.execute(_TICKETS, {"b_ids": list(by_ticket)}).mappings()
        }
        out: dict[tuple[int, int], TicketView] = {}
        for ticket_id, evs in by_ticket.items():
            with self._folds_lock:
                kept = self._folds.get(ticket_id)
            i = 0
            while i < len(evs):
                version = evs[i]["unit_version"]
                j = i
                while j < len(evs) and evs[j]["unit_version"] == version:
                    j += 1
                whole = evs[j - 1]["seq"] == version
                if kept is not None and kept[0] == evs[i]["seq"] - 1 and whole:
                    kept = self._fold_on(kept, evs[i:j], version)
                    _, state, d, at = kept
                    row = {**tickets[ticket_id], "updated_at": at}
                    out[(ticket_id, version)] = self._view(
                        account, row, d, state, at, replayed=True
                    )
                else:
                    out[(ticket_id, version)] = self._view_at(conn, account, ticket_id, version)
                    with self._folds_lock:
                        kept = self._folds.get(ticket_id)
                i = j
            if kept is not None:
                self._keep_fold(ticket_id, kept)
        return out

    def _fold_on(
        self,
        fold_: tuple[int, TicketState, Definition, datetime],
        rows: Iterable[Any],
        version: int,
    ) -> tuple[int, TicketState, Definition, datetime]:
        """A kept fold (version, state, definition, instant) carried on over history ``rows``
        (the ones right after it, in order), to ``version``."""
        _, state, d, at = fold_
        for e in rows:
            record = record_of(e)
            if record.kind == "migrated":
                target = self.registry.by_hash(record.data["to_hash"])
                state = apply(target, state, record, before=d)
                d = target
            else:
                state = apply(d, state, record)
            at = e["at"]
        return (version, state, d, at)

    def _keep_fold(
        self, ticket_id: int, fold_: tuple[int, TicketState, Definition, datetime]
    ) -> None:
        """Keep ``fold_`` as the ticket's last, unless a later one is kept already."""
        with self._folds_lock:
            cached = self._folds.get(ticket_id)
            if cached is None or cached[0] < fold_[0]:
                self._folds[ticket_id] = fold_
                self._folds.move_to_end(ticket_id)
                if len(self._folds) > FOLDS_KEPT:
                    self._folds.popitem(last=False)

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
            id=row["number"],
            account=account,
            workflow=d.name,
            workflow_version=d.version,
            definition_hash=d.hash,
            subject=row["subject"],
            description=row["description"],
            customer_name=row["customer_name"],
            customer_email=row["customer_email"],
            requester_id=row["requester_id"],
            current=state,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            sla={name: clock_report(d, c, now) for name, c in state.sla.clocks.items()},
            replayed=replayed,
        )


def _origin(d: Definition) -> str:
    return d.origin or "the definitions given"


def _age(limit: timedelta) -> str:
    """A limit as people say it: whole days as days, else seconds."""
    if limit % timedelta(days=1) == timedelta(0):
        days = limit.days
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{limit.total_seconds():g} seconds"


def _refuse_if_final(d: Definition, ticket: TicketState, action: str) -> None:
    """A closed ticket takes no reply, comment or field change: the refusal names its state."""
    if d.is_final(ticket.state):
        raise InvalidTransition(action, ticket.state, [], f"the ticket is {ticket.state} (final)")
