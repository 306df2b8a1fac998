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

import functools
import json
import logging
import os
import pickle
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .db import Database
from .definition import Definition, parse_text
from .errors import Forbidden, InputError
from .guards import GuardContext
from .history import TICKET_FIELDS, EventRecord, TicketState, created_fields, updates
from .machine import ADMIN, machine_for
from .migrate import MIGRATORS
from .prepared import Prepared
from .records import E, T
from .registry import DefinitionRegistry
from .sla import ClockState, SlaFields, clock_report, clocks_after

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["MAX_REFUSALS", "Attainment", "Refusal", "Side", "WhatIf", "what_if"]

log = logging.getLogger(__name__)

MAX_REFUSALS = 1000
"""The answer lists at most this many refused events (and counts them all)."""
BATCH = 1000
"""Tickets read (with their events) per round trip."""
PARALLEL_FROM = 20_000
"""From this many tickets in the window, parts of it are replayed in other processes."""
MAX_WORKERS = 4
"""Processes at most (one per core, this one included)."""
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

    def count(
        self,
        definition: Definition,
        clocks: Mapping[str, ClockState],
        priority: str | None,
        now: datetime,
    ) -> None:
        self.tickets += 1
        for name, clock in clocks.items():
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
                self.breaches_by_priority[priority or "unset"] += 1
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
    """The ticket's number (what its account calls it)."""
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
    window = {"account_id": account_id, "workflow": candidate.name, "since": since, "until": until}
    with tf.db.read() as conn:
        ids = [r[0] for r in _rows(conn, _IDS, window)]
    tallies = _tally_parts(tf, candidate, ids, now)
    total = tallies[0]
    for more in tallies[1:]:
        total.add(more)
    current, cand = total.current, total.candidate
    current.versions = list(total.versions)
    return WhatIf(
        account, candidate.name, since, until, now, current, cand, total.refused, total.refusals
    )


@dataclass(slots=True)
class _Tally:
    """The answer for some of the window's tickets (a part: see :func:`_tally_parts`)."""

    current: Side
    candidate: Side
    refused: list[Refusal]
    """The first ``MAX_REFUSALS`` refused events, in ticket order."""
    refusals: int = 0
    versions: dict[str, None] = field(default_factory=dict)
    """The versions the tickets ran on, in the order first met."""

    def add(self, later: _Tally) -> None:
        """Count ``later`` (the tickets after these) in: as if counted in one go."""
        for mine, theirs in ((self.current, later.current), (self.candidate, later.candidate)):
            mine.tickets += theirs.tickets
            for a, b in (
                (mine.first_response, theirs.first_response),
                (mine.resolution, theirs.resolution),
            ):
                a.met, a.breached, a.open = a.met + b.met, a.breached + b.breached, a.open + b.open
            mine.breaches_by_priority.update(theirs.breaches_by_priority)
            mine.first_response_seconds += theirs.first_response_seconds
            mine.not_replayed += theirs.not_replayed
        self.refused += later.refused[: max(0, MAX_REFUSALS - len(self.refused))]
        self.refusals += later.refusals
        for v in later.versions:
            self.versions.setdefault(v)


def _tally(
    db: Database,
    by_hash: Callable[[str], Definition],
    candidate: Definition,
    ids: Sequence[int],
    now: datetime,
) -> _Tally:
    current = Side("as it happened", [])
    cand = Side("candidate", [f"{candidate.version} #{candidate.hash}"])
    out = _Tally(current, cand, [])
    for row, replayed in _replayed(db, candidate, ids):
        d = by_hash(row.definition_hash)
        out.versions.setdefault(f"{d.version} #{d.hash}")
        current.count(d, row.clocks, row.priority, now)
        if isinstance(replayed.outcome, Exception):
            cand.not_replayed.append(
                {"ticket": row.number, "message": _why(replayed.outcome, candidate)}
            )
        else:
            cand.count(candidate, replayed.outcome, replayed.priority, now)
        out.refusals += len(replayed.refused)
        out.refused.extend(replayed.refused[: max(0, MAX_REFUSALS - len(out.refused))])
    return out


def _tally_parts(
    tf: Tierflow, candidate: Definition, ids: list[int], now: datetime
) -> list[_Tally]:
    """The tallies of ``ids`` in order: on a big window, parts of it in other processes (one per
    core, each a fresh interpreter reading the database itself: nothing of this process is
    copied or run again there), and the first part here meanwhile. A part another process
    could not do is done here."""
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    url = tf.db.url
    if (
        len(ids) < PARALLEL_FROM
        or workers < 2
        or candidate.source_text is None
        or (tf.db.is_sqlite and sa.engine.make_url(url).database in (None, "", ":memory:"))
    ):
        return [_tally(tf.db, tf.registry.by_hash, candidate, ids, now)]
    # the first part a little bigger: the others start a fresh interpreter first
    first = len(ids) * (100 + 10 * (workers - 1)) // (100 * workers)
    rest = ids[first:]
    size = -(-len(rest) // (workers - 1))
    parts = [rest[i : i + size] for i in range(0, len(rest), size)]
    with ThreadPoolExecutor(len(parts)) as waiting:
        futures = [
            waiting.submit(_in_process, (url, candidate.source_text, candidate.hash, part, now))
            for part in parts
        ]
        out = [_tally(tf.db, tf.registry.by_hash, candidate, ids[:first], now)]
        for part, future in zip(parts, futures, strict=True):
            try:
                out.append(future.result())
            except Exception:  # redone here: a real error surfaces from that
                log.warning("what-if: a part failed in another process; done here", exc_info=True)
                out.append(_tally(tf.db, tf.registry.by_hash, candidate, part, now))
    return out


def _in_process(args: tuple[Any, ...]) -> _Tally:
    """``_tally_apart(*args)`` run by ``python -m workflow.whatif_part``."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "workflow.whatif_part"],
        input=pickle.dumps(args),
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace")[-2000:])
    tally = pickle.loads(proc.stdout)
    assert isinstance(tally, _Tally)
    return tally


def _tally_apart(url: str, source: str, expected: str, ids: list[int], now: datetime) -> _Tally:
    """:func:`_tally` in another process: its own connection, the candidate parsed again from
    its text (the same version, or no answer), the versions tickets ran on read by hash."""
    candidate = parse_text(source, source="what-if candidate", check=False)
    if candidate.hash != expected:
        raise ValueError(f"the candidate parsed again is #{candidate.hash}, not #{expected}")
    db = Database(url, pool_size=1, max_overflow=1)
    try:
        registry = DefinitionRegistry(db, lambda: now)
        return _tally(db, registry.by_hash, candidate, ids, now)
    finally:
        db.dispose()


@dataclass(frozen=True, slots=True)
class Row:
    """A ticket as it happened: the version it runs on, its stored clocks and priority."""

    id: int
    number: int
    """What its account calls it."""
    definition_hash: str
    priority: str | None
    clocks: dict[str, ClockState]


@dataclass(frozen=True, slots=True)
class Replayed:
    """A ticket's history replayed through the candidate: its clocks (or why the candidate
    cannot follow the history), its priority, and the events the candidate would refuse."""

    outcome: dict[str, ClockState] | Exception
    priority: str | None
    refused: list[Refusal]


_IDS = Prepared(
    sa.select(T.c.id)
    .where(
        T.c.account_id == sa.bindparam("account_id"),
        T.c.workflow == sa.bindparam("workflow"),
        T.c.received_at >= sa.bindparam("since", type_=T.c.received_at.type),
        T.c.received_at < sa.bindparam("until", type_=T.c.received_at.type),
    )
    .order_by(T.c.id)
)
# A batch is read by id range (the primary keys' order, no sort) and the rows of other tickets
# in that range dropped: filtering by account in SQL lets SQLite pick the account's index and
# sort all its tickets for every batch.
_TICKETS = Prepared(
    sa.select(T.c.id, T.c.number, T.c.definition_hash, T.c.priority, T.c.sla_state)
    .where(T.c.id >= sa.bindparam("first"), T.c.id <= sa.bindparam("last"))
    .order_by(T.c.id)
)
_EVENTS = Prepared(
    sa.select(
        E.c.ticket_id,
        E.c.seq,
        E.c.kind,
        E.c.trigger,
        E.c.from_state,
        E.c.to_state,
        # as text: many are '{}', decoded only when not
        sa.cast(E.c.changes, sa.Text).label("changes"),
        sa.cast(E.c.data, sa.Text).label("data"),
        E.c.response,
        E.c.role,
        E.c.note,
        E.c.at,
    )
    .where(
        E.c.ticket_id >= sa.bindparam("first"),
        E.c.ticket_id <= sa.bindparam("last"),
        # breaches recorded under the version that ran: the candidate's clocks decide its own
        E.c.kind != sa.bindparam("skipped"),
    )
    .order_by(E.c.ticket_id, E.c.seq)
)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _object(text: str | None) -> Mapping[str, Any]:
    """A JSON column's object, read-only: most are ``{}``, many others repeat (the same
    changes, the same data), so each text is decoded once and its object shared."""
    if not text or text == "{}":
        return _EMPTY
    return _decoded(text)


@functools.lru_cache(maxsize=4096)
def _decoded(text: str) -> Mapping[str, Any]:
    value = json.loads(text)
    return MappingProxyType(value) if isinstance(value, dict) else _EMPTY


def _rows(conn: sa.Connection, stmt: Prepared, values: Mapping[str, Any]) -> Sequence[Any]:
    """Every row of ``stmt``, raw (the driver's values: no result processing), through
    SQLAlchemy's driver-level execution."""
    c = stmt.compiled(conn.dialect)
    return conn.exec_driver_sql(c.sql, c.processed(values)).all()


def _processor(stmt: Prepared, conn: sa.Connection, column: str) -> Callable[[Any], Any]:
    found = dict(stmt.compiled(conn.dialect).result_at).get(column)
    return found if found is not None else _same


def _same(value: Any) -> Any:
    return value


def _replayed(
    db: Database, candidate: Definition, ids: Sequence[int]
) -> Iterator[tuple[Row, Replayed]]:
    """Each ticket of ``ids`` (ascending) as it happened and replayed through ``candidate``.
    Read in batches straight off the driver's rows (SQLAlchemy's row processing costs more
    than the replay); the replay folds with :func:`workflow.history.updates` and
    :func:`workflow.sla.clocks_after`, the steps of the live fold, on a mutable record."""
    machine = machine_for(candidate)
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        wanted = set(batch)
        values = {"first": batch[0], "last": batch[-1], "skipped": "sla_breached"}
        with db.read() as conn:
            tickets = [r for r in _rows(conn, _TICKETS, values) if r[0] in wanted]
            events = [r for r in _rows(conn, _EVENTS, values) if r[0] in wanted]
            sla_state = _processor(_TICKETS, conn, "sla_state")
            instant = _processor(_EVENTS, conn, "at")
        i, n = 0, len(events)
        for ticket_id, number, definition_hash, priority, state in tickets:
            stored = sla_state(state) or {}
            row = Row(
                ticket_id,
                number,
                definition_hash,
                priority,
                {k: ClockState.from_json(v) for k, v in stored.items()},
            )
            j = i
            while j < n and events[j][0] == ticket_id:
                j += 1
            yield row, _replay(candidate, machine, number, events[i:j], instant)
            i = j


class _Ticket:
    """A ticket's fields (not its clocks) as the replay goes: changed in place."""

    __slots__ = TICKET_FIELDS
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
    assignee_id: int | None

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.assignee_id = None
        for name, value in values.items():
            setattr(self, name, value)

    def state_with(self, clocks: dict[str, ClockState]) -> TicketState:
        """The ticket as a :class:`TicketState` (what guards read), with these clocks."""
        return TicketState(
            **{name: getattr(self, name) for name in TICKET_FIELDS},
            sla=SlaFields(clocks, None, None, None),
        )


def _replay(
    candidate: Definition,
    machine: Any,
    number: int,
    rows: Sequence[Any],
    instant: Callable[[Any], Any],
) -> Replayed:
    """One ticket's history through ``candidate``: what :func:`workflow.history.apply` folds
    (with ``summary=False``), step by step, without a new frozen ticket per event."""
    refused: list[Refusal] = []
    ticket: _Ticket | None = None
    clocks: dict[str, ClockState] = {}
    try:
        for (
            _,
            seq,
            kind,
            trigger,
            from_state,
            to_state,
            changes,
            data,
            response,
            role,
            note,
            at,
        ) in rows:
            event = EventRecord(
                kind,
                instant(at),
                trigger,
                from_state,
                to_state,
                _object(changes),
                _object(data),
                bool(response),
            )
            if kind == "created":
                if ticket is not None:
                    raise ValueError("'created' must be the first event")
                ticket = _Ticket(created_fields(candidate, event))
                clocks = clocks_after(candidate, ticket, None, event)
                continue
            if ticket is None:
                raise ValueError(f"{kind!r} event before 'created'")
            if kind == "transition":
                view = functools.partial(ticket.state_with, clocks)
                for guard, message in _judge(
                    candidate, machine, ticket.state, view, event, role, note
                ):
                    refused.append(
                        Refusal(number, seq, event.at, trigger or "", from_state, guard, message)
                    )
            # a migration is a state change within the candidate
            before = candidate if kind == "migrated" else None
            for name, value in updates(candidate, ticket, event, before=before).items():
                setattr(ticket, name, value)
            clocks = clocks_after(candidate, ticket, clocks, event, before=before)
        if ticket is None:
            raise ValueError("no events")
    except (KeyError, ValueError) as exc:
        return Replayed(exc, None, refused)
    return Replayed(clocks, ticket.priority, refused)


def _judge(
    candidate: Definition,
    machine: Any,
    state: str,
    view: Callable[[], TicketState],
    event: EventRecord,
    role: str | None,
    note: str | None,
) -> list[tuple[str, str]]:
    """(guard, message) for each reason the candidate would have refused this transition.
    ``state``: the ticket's before it; ``view``: the ticket as guards see it (built only when
    the transition has guards)."""
    trigger, source = event.trigger or "", event.from_state or state
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
    if t.guards:  # the ticket as guards see it, built only for a transition that has some
        ctx = GuardContext(view(), candidate, role, note, event.data, event.at)
        out += [(r.guard, r.message) for r in machine.reasons(t, ctx)]
    return out


def _why(exc: Exception, candidate: Definition) -> str:
    if isinstance(exc, KeyError):
        return (
            f"version {candidate.version} has no {exc.args[0]!r} "
            "(a state or value this ticket's history uses)"
        )
    return str(exc)
