"""Who works on a ticket: one assignee, a person holding a role that acts where the ticket is.

The roles that *act at a state* are the staff roles of the transitions leaving it. A transition
hands the ticket back to the pool (unassigned) when the staff acting at its destination are
others than at its source - roles that act everywhere (the supervisor, who may cancel in any
open state) do not count - so escalating (Level 1 to 2 to 3), referring (executive to
supervisor) and returning (Level 3 to 2) unassign, while asking the customer or resolving keep
the assignee. A definition says otherwise per transition with ``set: {assignee: keep}`` or
``set: {assignee: pool}``. The decision is recorded in the transition's event
(``changes.assignee_id``), so replaying history never depends on who holds which role today.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from .definition import Definition

__all__ = ["ASSIGNEE_RULES", "acting_roles", "after_transition", "hands_back"]

ASSIGNEE_RULES = ("keep", "pool")
"""The values of a transition's ``set: {assignee: ...}``."""


@functools.lru_cache(maxsize=64)
def _acting(d: Definition) -> dict[str, frozenset[str]]:
    staff = d.staff_roles
    by_state: dict[str, frozenset[str]] = {}
    for state, transitions in d.by_state.items():
        roles: set[str] = set()
        for t in transitions.values():
            roles |= t.roles & staff
        by_state[state] = frozenset(roles)
    return by_state


def acting_roles(d: Definition, state: str) -> frozenset[str]:
    """The staff roles that may fire a transition from ``state`` (whom it may be assigned to)."""
    return _acting(d).get(state, frozenset())


@functools.lru_cache(maxsize=64)
def _everywhere(d: Definition) -> frozenset[str]:
    open_states = [s for s, roles in _acting(d).items() if roles and not d.is_final(s)]
    if not open_states:
        return frozenset()
    return frozenset.intersection(*(_acting(d)[s] for s in open_states))


def hands_back(d: Definition, source: str, dest: str) -> bool:
    """Whether moving from ``source`` to ``dest`` hands the ticket back to the pool by default."""
    common = _everywhere(d)
    return not ((acting_roles(d, source) - common) & (acting_roles(d, dest) - common))


def after_transition(
    d: Definition, source: str, dest: str, assignee_id: int | None, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """A transition's field changes with the assignee decided: ``assignee`` (the definition's
    rule, if any) replaced by ``assignee_id: None`` when the ticket goes back to the pool."""
    out = dict(changes)
    rule = out.pop("assignee", None)
    if assignee_id is not None and (
        rule == "pool" or (rule is None and hands_back(d, source, dest))
    ):
        out["assignee_id"] = None
    return out
