"""What changed between two versions of a workflow definition, as plain data.

:func:`diff` compares two :class:`~workflow.definition.Definition` objects section by section:

- ``states``: by name; changed when its group, level, title or finality changed;
- ``transitions``: by (trigger, source state), keyed ``trigger@source`` - one entry per source,
  as the engine sees them; changed when the destination, the fields it sets or whether it counts
  as a response changed; an added or removed one carries its guards and roles;
- ``guards``: of the transitions both versions have, by ``trigger@source guard`` - added,
  removed, or changed arguments / hint;
- ``roles``: the declared roles and role groups, and who may fire each transition both versions
  have;
- ``sla``: per clock: added, removed, or its targets, stop, pauses or title changed;
- ``calendar``: time zone, weekly hours per weekday, explicit holidays, holiday country (the
  resolved country dates as how many were added and removed);
- ``other``: the names of any other top-level fields that differ (kinds, priority matrix...).

Every entry is ``{"key": ..., "before": ..., "after": ...}`` (``before`` absent for an
addition, ``after`` for a removal), so the answer is JSON as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .definition import Definition, Transition

__all__ = ["SECTIONS", "DefinitionDiff", "Section", "diff"]

SECTIONS = ("states", "transitions", "guards", "roles", "sla", "calendar")
_COVERED = {
    "name",
    "version",
    "states",
    "transitions",
    "roles",
    "role_groups",
    "sla",
    "calendar",
}


@dataclass(frozen=True, slots=True)
class Section:
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass(frozen=True, slots=True)
class DefinitionDiff:
    name: str
    from_version: str
    from_hash: str
    to_version: str
    to_hash: str
    states: Section
    transitions: Section
    guards: Section
    roles: Section
    sla: Section
    calendar: Section
    other: list[str]

    @property
    def empty(self) -> bool:
        return not any(getattr(self, s) for s in SECTIONS) and not self.other

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": {"version": self.from_version, "hash": self.from_hash},
            "to": {"version": self.to_version, "hash": self.to_hash},
            **{s: getattr(self, s).to_dict() for s in SECTIONS},
            "other": self.other,
        }


def diff(old: Definition, new: Definition) -> DefinitionDiff:
    """What changed from ``old`` to ``new`` (usually two versions of one workflow)."""
    a, b = old.spec, new.spec
    states = _keyed(
        {k: v.model_dump(mode="json") for k, v in a.states.items()},
        {k: v.model_dump(mode="json") for k, v in b.states.items()},
    )
    ta, tb = _transitions(old), _transitions(new)
    transitions = _keyed(
        {k: _shape(t) for k, t in ta.items()}, {k: _shape(t) for k, t in tb.items()}
    )
    for e in transitions.added:  # a new transition brings its guards and roles along
        e["after"] = _whole(tb[e["key"]])
    for e in transitions.removed:
        e["before"] = _whole(ta[e["key"]])
    common = ta.keys() & tb.keys()
    guards = _keyed(
        _guards({k: ta[k] for k in ta if k in common}),
        _guards({k: tb[k] for k in tb if k in common}),
    )
    roles = Section()
    for r in b.roles:
        if r not in a.roles:
            roles.added.append({"key": f"role {r}", "after": r})
    for r in a.roles:
        if r not in b.roles:
            roles.removed.append({"key": f"role {r}", "before": r})
    groups = _keyed(
        {f"role group {k}": v for k, v in a.role_groups.items()},
        {f"role group {k}": v for k, v in b.role_groups.items()},
    )
    roles.added.extend(groups.added)
    roles.removed.extend(groups.removed)
    roles.changed.extend(groups.changed)
    for key in sorted(common):
        before, after = sorted(ta[key].roles), sorted(tb[key].roles)
        if before != after:
            roles.changed.append({"key": f"who fires {key}", "before": before, "after": after})
    roles.changed.sort(key=lambda e: e["key"])
    sla = _keyed(
        {k: v.model_dump(mode="json") for k, v in a.sla.items()},
        {k: v.model_dump(mode="json") for k, v in b.sla.items()},
    )
    calendar = _calendar(a.calendar.model_dump(mode="json"), b.calendar.model_dump(mode="json"))
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    other = sorted(k for k in da.keys() | db.keys() if k not in _COVERED and da.get(k) != db.get(k))
    return DefinitionDiff(
        new.name,
        old.version,
        old.hash,
        new.version,
        new.hash,
        states,
        transitions,
        guards,
        roles,
        sla,
        calendar,
        other,
    )


def transition_key(trigger: str, source: str) -> str:
    """How a transition is named in a diff: ``trigger@source``."""
    return f"{trigger}@{source}"


def _transitions(d: Definition) -> dict[str, Transition]:
    return {transition_key(t.trigger, t.source): t for t in d.transitions}


def _shape(t: Transition) -> dict[str, Any]:
    """What a transition entry compares (guards and roles have sections of their own)."""
    return {
        "trigger": t.trigger,
        "source": t.source,
        "dest": t.dest,
        "set": dict(t.set),
        "response": t.response,
    }


def _whole(t: Transition) -> dict[str, Any]:
    return {
        **_shape(t),
        "roles": sorted(t.roles),
        "guards": [g.model_dump(mode="json", exclude_none=True) for g in t.guards],
    }


def _guards(transitions: dict[str, Transition]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, t in transitions.items():
        seen: dict[str, int] = {}
        for g in t.guards:
            seen[g.name] = seen.get(g.name, 0) + 1
            name = g.name if seen[g.name] == 1 else f"{g.name}#{seen[g.name]}"
            out[f"{key} {name}"] = g.model_dump(mode="json", exclude_none=True)
    return out


def _keyed(before: dict[str, Any], after: dict[str, Any]) -> Section:
    """Added, removed and changed entries of two name -> value maps (order of ``after``, then
    of ``before``). A changed mapping lists only the fields that differ."""
    s = Section()
    for k, v in after.items():
        if k not in before:
            s.added.append({"key": k, "after": v})
        elif before[k] != v:
            old = before[k]
            if isinstance(old, dict) and isinstance(v, dict):
                keys = [f for f in dict.fromkeys([*old, *v]) if old.get(f) != v.get(f)]
                old = {f: old.get(f) for f in keys}
                v = {f: v.get(f) for f in keys}
            s.changed.append({"key": k, "before": old, "after": v})
    for k, v in before.items():
        if k not in after:
            s.removed.append({"key": k, "before": v})
    return s


def _calendar(a: dict[str, Any], b: dict[str, Any]) -> Section:
    s = Section()
    for f in ("timezone", "holiday_country", "holiday_subdivision"):
        if a.get(f) != b.get(f):
            s.changed.append({"key": f, "before": a.get(f), "after": b.get(f)})
    hours = _keyed(a["hours"], b["hours"])
    for kind in ("added", "removed", "changed"):
        for e in getattr(hours, kind):
            getattr(s, kind).append({**e, "key": f"hours.{e['key']}"})
    ha, hb = set(a["holidays"]), set(b["holidays"])
    s.added.extend({"key": f"holiday {d}", "after": d} for d in sorted(hb - ha))
    s.removed.extend({"key": f"holiday {d}", "before": d} for d in sorted(ha - hb))
    ca, cb = set(a.get("country_holidays") or ()), set(b.get("country_holidays") or ())
    if ca != cb:
        s.changed.append(
            {
                "key": "country_holidays",
                "before": len(ca),
                "after": len(cb),
                "added": len(cb - ca),
                "removed": len(ca - cb),
            }
        )
    return s
