"""Moving an account's open tickets from one version of a workflow to another.

A migration names the workflow, the version the tickets are on, the version they move to and a
``state_map`` (a state of the old version -> a state of the new one; a state not in the map
keeps its name). The state a ticket came from (where an ``@return`` sends it back) keeps its
name when the new version has that state, else it is mapped too. :func:`plan_ticket` says, per open
ticket (not in a final state) of the account on the old version, its state before and after and
whether it can move - or why not: the map sends it to a state the new version does not have, or
to a final state, or to a state where no transition leads on (an ``@return`` that could not find
the state the ticket came from counts as none), or the ticket carries a kind, category, channel,
complexity or urgency the new version does not know. :func:`migrate` applies it: each ticket
that can move moves in its own transaction (a unit of work), which appends a ``migrated`` event
(and its outbox event ``ticket.migrated``) and points the ticket at the new version; a ticket
that changed meanwhile is planned again inside its transaction. Replay follows the ``migrated``
event from one version to the next (:func:`workflow.history.replay`), so ``tierflow check``
stays clean.

SLA clocks after a migration (see :mod:`workflow.sla`): the business time each clock used is
kept, measured on the old version's calendar up to the migration; from then on the clock runs on
the new version's calendar (its pinned holidays) against the new version's target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .definition import RETURN, Definition
from .errors import Forbidden, InputError, NotFound
from .history import EventRecord, TicketState
from .machine import ADMIN
from .records import Decision, T, state_of

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = [
    "MIGRATORS",
    "MigrationItem",
    "MigrationReport",
    "migrate",
    "named_version",
    "plan_ticket",
]

MIGRATORS = (ADMIN, "supervisor", "designer")
"""Roles that may migrate an account's tickets (the platform admin, the account's supervisor,
a platform designer)."""


@dataclass(frozen=True, slots=True)
class MigrationItem:
    ticket_id: int
    from_state: str
    to_state: str
    can_move: bool
    reason: str | None
    """Why the ticket cannot move (None when it can)."""
    moved: bool = False
    """Applied (not a dry run) and committed."""


@dataclass(frozen=True, slots=True)
class MigrationReport:
    workflow: str
    from_version: str
    from_hash: str
    to_version: str
    to_hash: str
    dry_run: bool
    items: tuple[MigrationItem, ...]

    @property
    def movable(self) -> int:
        return sum(i.can_move for i in self.items)

    @property
    def moved(self) -> int:
        return sum(i.moved for i in self.items)

    @property
    def refused(self) -> int:
        return sum(not i.can_move for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "from": {"version": self.from_version, "hash": self.from_hash},
            "to": {"version": self.to_version, "hash": self.to_hash},
            "dry_run": self.dry_run,
            "movable": self.movable,
            "moved": self.moved,
            "refused": self.refused,
            "items": [
                {
                    "ticket": i.ticket_id,
                    "from_state": i.from_state,
                    "to_state": i.to_state,
                    "can_move": i.can_move,
                    "reason": i.reason,
                    "moved": i.moved,
                }
                for i in self.items
            ],
        }


@dataclass(frozen=True, slots=True)
class _Plan:
    to_state: str
    previous_state: str | None
    reason: str | None


def plan_ticket(
    old: Definition, new: Definition, ticket: TicketState, state_map: Mapping[str, str]
) -> _Plan:
    """Where ``ticket`` (on ``old``) lands on ``new`` under ``state_map``, or why it cannot."""
    target = state_map.get(ticket.state, ticket.state)
    prev = ticket.previous_state  # where an @return goes: kept when the new version has it
    if prev is not None and prev not in new.spec.states:
        prev = state_map.get(prev)
        if prev not in new.spec.states:
            prev = None
    v = f"version {new.version}"
    spec = new.spec
    reason: str | None = None
    if target not in spec.states:
        reason = (
            f"the state map sends {ticket.state!r} to {target!r}, which {v} does not have "
            f"(its states: {', '.join(spec.states)})"
        )
    elif new.is_final(target):
        reason = f"{target!r} is a final state in {v}: no transition leads on from it"
    elif new.category(ticket.kind, ticket.category) is None:
        reason = f"{v} has no {ticket.kind} category {ticket.category!r}"
    elif ticket.channel not in spec.channels:
        reason = f"{v} has no channel {ticket.channel!r}"
    elif ticket.complexity is not None and ticket.complexity not in spec.complexity:
        reason = f"{v} has no complexity {ticket.complexity!r}"
    elif ticket.urgency is not None and ticket.urgency not in spec.urgency:
        reason = f"{v} has no urgency {ticket.urgency!r}"
    else:
        onward = new.by_state.get(target, {})
        returns = [t for t in onward.values() if t.dest == RETURN]
        if not onward:
            reason = f"no transition leads on from {target!r} in {v}"
        elif returns and prev not in new.return_targets(target):
            came = f"{ticket.previous_state!r}" if ticket.previous_state else "nowhere"
            reason = (
                f"{target!r} leads on by returning where the ticket came from ({came}), "
                f"which {v} cannot return to from {target!r} "
                f"(map it to one of: {', '.join(new.return_targets(target))})"
            )
    return _Plan(target, prev, reason)


def migrate(
    tf: Tierflow,
    *,
    account: str,
    workflow: str,
    from_version: str,
    to_version: str,
    state_map: Mapping[str, str] | None = None,
    dry_run: bool = True,
    role: str,
    actor: str | None = None,
) -> MigrationReport:
    """Plan (``dry_run``) or apply the migration of ``account``'s open tickets of ``workflow``
    from ``from_version`` to ``to_version`` (human versions or hashes)."""
    if role not in MIGRATORS:
        raise Forbidden(role, "migrate tickets to another workflow version", list(MIGRATORS))
    old = named_version(tf, workflow, from_version, "from_version")
    new = named_version(tf, workflow, to_version, "to_version")
    if old.hash == new.hash:
        raise InputError("to_version", f"{to_version!r} is the version the tickets are on")
    state_map = dict(state_map or {})
    for source in state_map:
        if source not in old.spec.states:
            raise InputError(
                f"state_map.{source}",
                f"{source!r} is not a state of {workflow} {old.version} "
                f"(its states: {', '.join(old.spec.states)})",
            )
    account_id = tf.account_id(account)
    finals = [s for s, st in old.spec.states.items() if st.final]
    with tf.db.read() as conn:
        rows = (
            conn.execute(
                sa.select(T)
                .where(
                    T.c.account_id == account_id,
                    T.c.workflow == workflow,
                    T.c.definition_hash == old.hash,
                    T.c.state.not_in(finals),
                )
                .order_by(T.c.id)
            )
            .mappings()
            .all()
        )
    items: list[MigrationItem] = []
    for row in rows:
        ticket = state_of(row)
        p = plan_ticket(old, new, ticket, state_map)
        item = MigrationItem(row["number"], ticket.state, p.to_state, p.reason is None, p.reason)
        if not dry_run and item.can_move:
            item = _apply_one(tf, account, item, old, new, state_map, role, actor)
        items.append(item)
    return MigrationReport(
        workflow, old.version, old.hash, new.version, new.hash, dry_run, tuple(items)
    )


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _apply_one(
    tf: Tierflow,
    account: str,
    item: MigrationItem,
    old: Definition,
    new: Definition,
    state_map: Mapping[str, str],
    role: str,
    actor: str | None,
) -> MigrationItem:
    def decide(ticket: TicketState, d: Definition, now: datetime) -> Decision:
        if d.hash != old.hash:
            raise _Refused(f"it is on version {d.version} now, not {old.version}")
        if old.is_final(ticket.state):
            raise _Refused(f"it is {ticket.state} now (final)")
        p = plan_ticket(old, new, ticket, state_map)
        if p.reason is not None:
            raise _Refused(p.reason)
        event = EventRecord(
            kind="migrated",
            at=now,
            from_state=ticket.state,
            to_state=p.to_state,
            changes={"previous_state": p.previous_state},
            data={
                "workflow": old.name,
                "from_version": old.version,
                "from_hash": old.hash,
                "to_version": new.version,
                "to_hash": new.hash,
            },
        )
        note = f"migrated from {old.name} {old.version} to {new.version}"
        return Decision([(event, note)], moves_to=new)

    try:
        view, _n = tf._unit(account, item.ticket_id, decide, actor, role, None, None)
    except _Refused as refused:
        return MigrationItem(
            item.ticket_id, item.from_state, item.to_state, False, refused.reason, False
        )
    return MigrationItem(item.ticket_id, item.from_state, view.state, True, None, True)


def named_version(tf: Tierflow, workflow: str, version: str, field: str) -> Definition:
    """A stored version of ``workflow`` by human version or hash; an InputError naming
    ``field`` (and the published versions) when there is none."""
    if not tf.versions(workflow):
        known = ", ".join(d.name for d in tf.definitions())
        raise InputError("workflow", f"unknown workflow {workflow!r} (known: {known})")
    try:
        return tf.definition(workflow, version)
    except NotFound:
        known = ", ".join(v for v, _h, _at in tf.versions(workflow)) or "none"
        raise InputError(
            field, f"{workflow} has no version {version!r} (published: {known})"
        ) from None
