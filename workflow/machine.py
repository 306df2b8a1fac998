"""One ``transitions`` Machine per definition version, fired on a light per-call subject.

The Machine is built once per definition (see :func:`machine_for`) with ``model=None`` and
``auto_transitions`` off; a unit of work fires ``machine.events[trigger].trigger(subject)`` on a
tiny slotted object carrying the ticket's state and the guard context — never a Machine per
ticket, never ``add_model``. Guards are the Machine's conditions; where ``transitions`` would
quietly return ``False``, :meth:`WorkflowMachine.fire` raises a typed error that explains why.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from transitions import Machine

from .definition import RETURN, Definition, GuardRef, Transition
from .errors import Forbidden, GuardFailed, InvalidTransition, Reason, UnknownTrigger
from .guards import REGISTRY, GuardContext
from .history import TicketState

__all__ = ["Fired", "Option", "WorkflowMachine", "machine_for"]

ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Option:
    """One trigger defined from the ticket's state, as seen by one role."""

    trigger: str
    dest: str
    allowed: bool
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Fired:
    """What firing decided: the transition taken, where it lands, the fields it sets."""

    transition: Transition
    dest: str
    changes: dict[str, Any]


class _Subject:
    """The per-call model ``transitions`` moves: a state and what the guards read."""

    __slots__ = ("ctx", "state")

    def __init__(self, state: str, ctx: GuardContext) -> None:
        self.state = state
        self.ctx = ctx


def _guard_condition(ref: GuardRef) -> Any:
    g = REGISTRY[ref.name]
    args = ref.args

    def condition(event: Any) -> bool:
        return g(event.model.ctx, args) is None

    condition.__name__ = f"guard_{ref.name}"
    return condition


def _returns_to(dest: str) -> Any:
    def condition(event: Any) -> bool:
        return bool(event.model.ctx.ticket.previous_state == dest)

    return condition


class WorkflowMachine:
    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        spec = definition.spec
        machine = Machine(
            model=None,
            states=list(spec.states),
            initial=spec.initial,
            auto_transitions=False,
            send_event=True,
        )
        for t in definition.transitions:
            conditions = [_guard_condition(g) for g in t.guards]
            if t.dest == RETURN:
                for dest in definition.return_targets(t.source):
                    machine.add_transition(
                        t.trigger, t.source, dest, conditions=[_returns_to(dest), *conditions]
                    )
            else:
                machine.add_transition(t.trigger, t.source, t.dest, conditions=conditions)
        self._machine = machine

    # --- what is possible ----------------------------------------------------------------
    def transition(self, state: str, trigger: str) -> Transition:
        """The transition ``trigger`` takes from ``state``, or the typed reason there is none."""
        d = self.definition
        if trigger not in d.triggers:
            raise UnknownTrigger(trigger, d.name, d.triggers)
        t = d.by_state[state].get(trigger)
        if t is None:
            raise InvalidTransition(trigger, state, list(d.by_state[state]))
        return t

    def reasons(self, t: Transition, ctx: GuardContext) -> list[Reason]:
        """Every failing guard of ``t`` (the role is checked separately)."""
        out = []
        for ref in t.guards:
            message = REGISTRY[ref.name](ctx, ref.args)
            if message is not None:
                if ref.hint:
                    message = f"{message}; {ref.hint}"
                out.append(Reason(ref.name, message))
        return out

    def dest_of(self, t: Transition, ticket: TicketState) -> str:
        return (ticket.previous_state or "?") if t.dest == RETURN else t.dest

    def explain(
        self,
        ticket: TicketState,
        role: str,
        now: datetime,
        note: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> list[Option]:
        """Every trigger defined from the ticket's state: allowed, or blocked and why."""
        ctx = GuardContext(ticket, self.definition, role, note, data or {}, now)
        options = []
        for trigger, t in self.definition.by_state[ticket.state].items():
            reasons = []
            if not _role_ok(role, t):
                reasons.append(Reason("role", _role_message(role, t)))
            reasons += self.reasons(t, ctx)
            options.append(Option(trigger, self.dest_of(t, ticket), not reasons, tuple(reasons)))
        return options

    # --- firing --------------------------------------------------------------------------
    def fire(
        self,
        ticket: TicketState,
        trigger: str,
        *,
        role: str,
        now: datetime,
        note: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Fired:
        """Decide one transition, or raise UnknownTrigger / InvalidTransition / Forbidden /
        GuardFailed."""
        t = self.transition(ticket.state, trigger)
        if not _role_ok(role, t):
            raise Forbidden(role, f"fire {trigger!r} from {ticket.state!r}", sorted(t.roles))
        data = data or {}
        ctx = GuardContext(ticket, self.definition, role, note, data, now)
        subject = _Subject(ticket.state, ctx)
        if not self._machine.events[trigger].trigger(subject):
            reasons = self.reasons(t, ctx)
            if not reasons:  # only a broken history can leave @return without a target
                raise InvalidTransition(trigger, ticket.state, [])
            raise GuardFailed(trigger, reasons)
        changes = {  # a `$data.X` the request did not give changes nothing
            field: data[value[6:]]
            if isinstance(value, str) and value.startswith("$data.")
            else value
            for field, value in t.set.items()
            if not (isinstance(value, str) and value.startswith("$data.") and value[6:] not in data)
        }
        return Fired(t, subject.state, changes)


def _role_ok(role: str, t: Transition) -> bool:
    return role == ADMIN or role in t.roles


def _role_message(role: str, t: Transition) -> str:
    return f"role {role!r} may not fire {t.trigger!r} here (allowed: {', '.join(sorted(t.roles))})"


_machines: dict[str, WorkflowMachine] = {}
_lock = threading.Lock()


def machine_for(definition: Definition) -> WorkflowMachine:
    """The one WorkflowMachine of this definition version (built on first use)."""
    m = _machines.get(definition.hash)
    if m is None:
        with _lock:
            m = _machines.get(definition.hash)
            if m is None:
                m = _machines[definition.hash] = WorkflowMachine(definition)
    return m
