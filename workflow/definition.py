"""Workflow definitions: the YAML schema, loading, semantic validation and the content hash.

A definition is data. Its schema is checked by pydantic (shape, types, enums); its meaning by
:func:`validate` (names that must exist, reachability, the priority matrix, guard arguments...),
which lists *every* problem it finds instead of stopping at the first.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import deque
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .calendar import BusinessCalendar, CalendarSpec
from .errors import DefinitionError, Problem
from .source import Loc, SourceMap, load_yaml

__all__ = [
    "RETURN",
    "Category",
    "Definition",
    "Transition",
    "builtin_definitions",
    "check_text",
    "folder_definitions",
    "load_definition",
    "parse_definition",
]

RETURN = "@return"
"""Pseudo-destination: back to the state the ticket entered its current state from."""

Group = Literal["intake", "level1", "level2", "level3", "administrative", "waiting", "done"]
Level = Literal["level1", "level2", "level3", "administrative"]
SETTABLE_FIELDS = ("channel", "outcome", "assignee")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateSpec(_Strict):
    group: Group
    level: Level | None = None
    title: str = ""
    final: bool = False


class GuardRef(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    hint: str | None = None
    """Appended to the guard's reason: what the person should do instead."""


class TransitionSpec(_Strict):
    trigger: str
    source: list[str] = Field(min_length=1)
    dest: str
    roles: list[str] = Field(min_length=1)
    guards: list[GuardRef] = Field(default_factory=list)
    set: dict[str, Any] = Field(default_factory=dict)
    response: bool = False
    """Firing it counts as a response to the customer (stops the first-response clock)."""

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PlaybookStep(_Strict):
    id: str
    title: str


class Category(_Strict):
    title: str = ""
    level: Level | None = None
    admin_class: Literal["A", "B"] | None = None
    playbook: list[PlaybookStep] = Field(default_factory=list)


class KindSpec(_Strict):
    categories: dict[str, Category] = Field(min_length=1)


class PlaybookConfig(_Strict):
    state: str
    roles: list[str]
    on_solved: str


class AutoClose(_Strict):
    """Fire ``trigger`` on tickets that stayed in ``state`` for ``after_days`` (background)."""

    state: str
    after_days: float = Field(gt=0)
    trigger: str


class SlaClockSpec(_Strict):
    title: str = ""
    target_hours: dict[str, float] = Field(default_factory=dict)
    """Business hours per priority, or ``all`` for every priority. Empty: no target."""
    stop: Literal["first_response", "resolution"]
    pause_in: list[str] = Field(default_factory=list)


class DefinitionSpec(_Strict):
    """The raw schema of a definition file."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str
    title: str = ""
    initial: str
    roles: list[str] = Field(min_length=1)
    role_groups: dict[str, list[str]] = Field(default_factory=dict)
    states: dict[str, StateSpec] = Field(min_length=1)
    channels: list[str] = Field(min_length=1)
    level_channels: dict[str, list[str]] = Field(default_factory=dict)
    admin_b_mailbox: str | None = None
    complexity: list[str] = Field(min_length=1)
    urgency: list[str] = Field(min_length=1)
    priorities: list[str] = Field(min_length=1)
    priority_matrix: dict[str, dict[str, str]]
    kinds: dict[str, KindSpec] = Field(min_length=1)
    playbook: PlaybookConfig | None = None
    reopen_window_days: float = Field(default=7, gt=0)
    auto_close: AutoClose | None = None
    calendar: CalendarSpec = Field(default_factory=CalendarSpec)
    sla: dict[str, SlaClockSpec] = Field(default_factory=dict)
    transitions: list[TransitionSpec] = Field(min_length=1)


class Transition:
    """One expanded edge: a trigger from exactly one source state."""

    __slots__ = ("dest", "guards", "index", "response", "roles", "set", "source", "trigger")

    def __init__(self, spec: TransitionSpec, index: int, source: str, roles: frozenset[str]):
        self.trigger = spec.trigger
        self.source = source
        self.dest = spec.dest
        self.roles = roles
        self.guards = tuple(spec.guards)
        self.set = dict(spec.set)
        self.response = spec.response
        self.index = index

    def __repr__(self) -> str:
        return f"<Transition {self.trigger}: {self.source} -> {self.dest}>"


class Definition:
    """A validated definition with the lookups the engine needs, computed once."""

    def __init__(
        self, spec: DefinitionSpec, source_text: str | None = None, origin: str | None = None
    ) -> None:
        self.spec = spec
        self.source_text = source_text
        self.origin = origin
        """Where it was read from (a file name), when known."""
        canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        self.hash = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        self.transitions: list[Transition] = [
            Transition(t, i, src, frozenset(self.expand_roles(t.roles)))
            for i, t in enumerate(spec.transitions)
            for src in t.source
        ]
        by_state: dict[str, dict[str, Transition]] = {s: {} for s in spec.states}
        for t in self.transitions:
            by_state.setdefault(t.source, {}).setdefault(t.trigger, t)
        self.by_state = by_state
        self.triggers: list[str] = list(dict.fromkeys(t.trigger for t in self.transitions))

    # --- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    def __repr__(self) -> str:
        return f"<Definition {self.name} {self.version} #{self.hash}>"

    # --- lookups -------------------------------------------------------------------------
    def expand_roles(self, roles: list[str]) -> list[str]:
        out: list[str] = []
        for r in roles:
            out.extend(self.spec.role_groups.get(r, [r]))
        return out

    @cached_property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(self.spec.calendar)

    @cached_property
    def staff_roles(self) -> frozenset[str]:
        return frozenset(self.spec.role_groups.get("staff", []))

    def category(self, kind: str, category: str) -> Category | None:
        k = self.spec.kinds.get(kind)
        return k.categories.get(category) if k else None

    def priority(self, complexity: str | None, urgency: str | None) -> str | None:
        if complexity is None or urgency is None:
            return None
        return self.spec.priority_matrix[urgency][complexity]

    def level_of(self, state: str) -> str | None:
        return self.spec.states[state].level

    def group_of(self, state: str) -> str:
        return self.spec.states[state].group

    def is_final(self, state: str) -> bool:
        return self.spec.states[state].final

    def return_targets(self, state: str) -> list[str]:
        """States a ticket can have entered ``state`` from (the targets of ``@return``)."""
        return list(
            dict.fromkeys(
                t.source for t in self.transitions if t.dest == state and t.dest != RETURN
            )
        )

    def edges(self) -> list[tuple[Transition, str]]:
        """Every (transition, concrete destination), ``@return`` expanded."""
        out: list[tuple[Transition, str]] = []
        for t in self.transitions:
            if t.dest == RETURN:
                out.extend((t, d) for d in self.return_targets(t.source))
            else:
                out.append((t, t.dest))
        return out

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")


# --- loading -----------------------------------------------------------------------------
def parse_definition(
    data: Any,
    *,
    source: str = "definition",
    text: str | None = None,
    check: bool = True,
    marks: SourceMap | None = None,
    found: list[Problem] | None = None,
    name: str | None = None,
) -> Definition:
    """Check shape and meaning; raise :class:`DefinitionError` listing every problem.
    ``check=False`` checks the shape only (a stored version, validated when published).

    With ``marks`` (where the nodes of ``text`` are) each problem carries its line and
    column, and the problems come in the order of the text; ``found`` are problems found
    before (duplicate keys). A value the schema refuses is set aside and the rest is checked
    too (a value outside a fixed set is stood in for by an allowed one), so one answer lists
    the schema's problems and the meaning's together; only a missing required field stops the
    meaning checks (they need it). ``name``, when given, is
    the name the definition must carry."""
    problems: list[Problem] = list(found or [])
    spec, schema, pruned = _shape(data)
    for loc, message, on_key in schema:
        problems.append(
            _problem(marks, loc, ".".join(str(p) for p in loc) or "(top)", message, on_key)
        )
    if spec is not None and name is not None and spec.name != name:
        message = f"{spec.name!r} is not {name!r}, the workflow published to"
        problems.append(_problem(marks, ("name",), "name", message, False))
    if spec is not None and check:
        structural = any(p and p[0] in ("states", "transitions", "initial") for p in pruned)
        for f in findings(spec, graph=not structural):
            if not any(f.loc[: len(p)] == p for p in pruned):
                problems.append(_problem(marks, f.loc, f.path, f.message, f.key))
    if problems:
        if marks is not None:
            problems.sort(key=lambda p: (p.line is None, p.line or 0, p.column or 0))
        raise DefinitionError(problems, source)
    assert spec is not None
    return Definition(spec, text, source)


_MAX_PRUNES = 50


def _shape(data: Any) -> tuple[DefinitionSpec | None, list[tuple[Loc, str, bool]], list[Loc]]:
    """The spec, every schema problem (loc, message, at the key), and the values set aside to
    get the spec. None when a required field is missing or nothing more can be set aside."""
    work = copy.deepcopy(data)
    schema: list[tuple[Loc, str, bool]] = []
    pruned: list[Loc] = []
    for _ in range(_MAX_PRUNES):
        try:
            return DefinitionSpec.model_validate(work), schema, pruned
        except ValidationError as exc:
            errors = exc.errors()
        stuck = False
        for err in errors:
            loc: Loc = tuple(err["loc"])
            if err["type"] == "missing" and any(loc[: len(p)] == p for p in pruned):
                stuck = True  # a required value this loop set aside: reported already
                continue
            message = err["msg"].removeprefix("Value error, ")
            schema.append((loc, message, err["type"] == "extra_forbidden"))
            if err["type"] == "missing":
                stuck = True
                continue
            if err["type"] == "literal_error" and _replace(work, loc, err["ctx"]["expected"]):
                pruned.append(loc)  # a stand-in from the allowed values: required fields too
                continue
            removed = _prune(work, loc)
            if removed is None:
                stuck = True
            else:
                pruned.append(removed)
        if stuck:
            return None, schema, pruned
    return None, schema, pruned


def _replace(data: Any, loc: Loc, expected: str) -> bool:
    """Put the first allowed value (pydantic's ``'a', 'b' or 'c'``) where ``loc`` is."""
    first = re.match(r"'([^']*)'", expected)
    node = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if first is None or not isinstance(node, dict) or loc[-1] not in node:
        return False
    node[loc[-1]] = first.group(1)
    return True


def _prune(data: Any, loc: Loc) -> Loc | None:
    """Remove the innermost mapping entry on ``loc``; where it was, or None."""
    node, best = data, None
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            best = (node, part, i)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
    if best is None:
        return None
    container, key, i = best
    del container[key]
    return loc[: i + 1]


def _problem(marks: SourceMap | None, loc: Loc, path: str, message: str, key: bool) -> Problem:
    at = marks.where(loc, key=key) if marks is not None else None
    return Problem(path, message, *(at or (None, None)))


def load_definition(path: str | Path) -> Definition:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError([f"cannot read file: {exc.strerror}"], str(path)) from None
    return parse_text(text, source=str(path))


def parse_text(
    text: str, *, source: str = "definition", check: bool = True, name: str | None = None
) -> Definition:
    """A definition from YAML ``text``; every problem at once, each with its line and column
    (duplicate keys included)."""
    data, marks, duplicates = load_yaml(text, source)
    if not isinstance(data, dict):
        raise DefinitionError([Problem("", "the top level must be a mapping", 1, 1)], source)
    return parse_definition(
        data, source=source, text=text, check=check, marks=marks, found=duplicates, name=name
    )


def check_text(text: str, *, name: str | None = None, source: str = "definition") -> Definition:
    """:func:`parse_text`, and when ``name`` is given the definition must carry that name."""
    return parse_text(text, source=source, name=name)


def folder_definitions(folder: str | Path) -> list[Definition]:
    """Every ``*.yaml`` / ``*.yml`` file of ``folder`` (by file name), each validated."""
    path = Path(folder)
    try:
        files = sorted(f for f in path.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
    except OSError as exc:
        raise DefinitionError([f"cannot read folder: {exc.strerror}"], str(path)) from None
    return [load_definition(f) for f in files]


def builtin_definitions() -> list[Definition]:
    """The definitions shipped in ``workflow/definitions/``."""
    folder = resources.files("workflow.definitions")
    return [
        parse_text(f.read_text(encoding="utf-8"), source=f"workflow/definitions/{f.name}")
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith((".yaml", ".yml"))
    ]


# --- semantic validation -----------------------------------------------------------------
class Finding(NamedTuple):
    """One semantic problem: where in the data (``loc``; ``key``: the mapping key itself is
    the offending node), the path as a person reads it, and what."""

    loc: Loc
    path: str
    message: str
    key: bool = False


def validate(spec: DefinitionSpec) -> list[str]:
    """Every semantic problem of a schema-valid definition, as ``path: message`` lines."""
    return [f"{f.path}: {f.message}" if f.path else f.message for f in findings(spec)]


def findings(spec: DefinitionSpec, *, graph: bool = True) -> list[Finding]:
    """Every semantic problem of a schema-valid definition. Names first; the graph checks
    run on the part of the graph whose names are known (a misspelt state does not hide an
    unreachable one); the intake check needs every guard known with valid arguments.
    ``graph=False`` leaves the graph and intake checks out."""
    from .guards import REGISTRY  # guards depend on definitions, not the other way round

    found: list[Finding] = []
    states = spec.states
    roles = set(spec.roles) | set(spec.role_groups) | {"admin"}

    def add(loc: Loc, path: str, message: str, *, key: bool = False) -> None:
        found.append(Finding(loc, path, message, key))

    def known(kind: str, name: str, pool: Any, path: str, loc: Loc) -> bool:
        if name in pool:
            return True
        add(loc, path, f"unknown {kind} {name!r} (known: {', '.join(sorted(pool))})")
        return False

    known("state", spec.initial, states, "initial", ("initial",))
    for group, members in spec.role_groups.items():
        for i, r in enumerate(members):
            known("role", r, spec.roles, f"role_groups.{group}", ("role_groups", group, i))
    for key, chans in spec.level_channels.items():
        for i, c in enumerate(chans):
            known("channel", c, spec.channels, f"level_channels.{key}", ("level_channels", key, i))

    # priority matrix: every urgency x complexity cell, each a known priority
    pm = ("priority_matrix",)
    for u in spec.urgency:
        row = spec.priority_matrix.get(u)
        if row is None:
            add(pm, "priority_matrix", f"missing row for urgency {u!r}", key=True)
            continue
        for c in spec.complexity:
            if c not in row:
                add(
                    (*pm, u), f"priority_matrix.{u}", f"missing cell for complexity {c!r}", key=True
                )
            elif row[c] not in spec.priorities:
                add(
                    (*pm, u, c),
                    f"priority_matrix.{u}.{c}",
                    f"unknown priority {row[c]!r} (known: {', '.join(spec.priorities)})",
                )
        for c in row:
            if c not in spec.complexity:
                add((*pm, u, c), f"priority_matrix.{u}", f"unknown complexity {c!r}", key=True)
    for u in spec.priority_matrix:
        if u not in spec.urgency:
            add((*pm, u), "priority_matrix", f"unknown urgency {u!r}", key=True)

    # categories
    for kname, kind in spec.kinds.items():
        for cname, cat in kind.categories.items():
            where = f"kinds.{kname}.categories.{cname}"
            loc: Loc = ("kinds", kname, "categories", cname)
            if cat.level is None and cat.admin_class is None:
                add(loc, where, "needs a level or an admin_class", key=True)
            ids = [s.id for s in cat.playbook]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                add(
                    (*loc, "playbook"),
                    f"{where}.playbook",
                    f"duplicate step id(s) {', '.join(dupes)}",
                )

    # transitions
    guards_ok = True
    seen: dict[tuple[str, str], int] = {}
    for i, t in enumerate(spec.transitions):
        where = f"transitions[{i}] ({t.trigger})"
        tloc: Loc = ("transitions", i)
        for j, s in enumerate(t.source):
            sloc = (*tloc, "source", j)
            if known("state", s, states, f"{where}.source", sloc) and states[s].final:
                add(sloc, f"{where}.source", f"{s!r} is final; nothing leaves a final state")
            if (t.trigger, s) in seen:
                add(
                    (*tloc, "trigger"),
                    where,
                    f"trigger {t.trigger!r} from {s!r} is already defined by "
                    f"transitions[{seen[(t.trigger, s)]}]",
                )
            seen.setdefault((t.trigger, s), i)
        if t.dest != RETURN:
            known("state", t.dest, states, f"{where}.dest", (*tloc, "dest"))
        for j, r in enumerate(t.roles):
            known("role", r, roles, f"{where}.roles", (*tloc, "roles", j))
        for g_i, g in enumerate(t.guards):
            gwhere = f"{where}.guards[{g_i}]"
            gloc: Loc = (*tloc, "guards", g_i)
            guard = REGISTRY.get(g.name)
            if guard is None:
                guards_ok = False
                add(
                    (*gloc, "name"),
                    f"{gwhere}.name",
                    f"unknown guard {g.name!r} (known: {', '.join(sorted(REGISTRY))})",
                )
                continue
            for p in guard.check_args(spec, g.args):
                guards_ok = False
                head, _, _rest = p.partition(": ")
                add((*gloc, *head.split(".")), gwhere, p)
        for field, value in t.set.items():
            if field not in SETTABLE_FIELDS:
                add(
                    (*tloc, "set", field),
                    f"{where}.set",
                    f"field {field!r} cannot be set (settable: {', '.join(SETTABLE_FIELDS)})",
                    key=True,
                )
            elif field == "channel" and not (
                isinstance(value, str) and (value.startswith("$data.") or value in spec.channels)
            ):
                add((*tloc, "set", "channel"), f"{where}.set.channel", f"unknown channel {value!r}")
            elif field == "assignee" and value not in ("keep", "pool"):
                add(
                    (*tloc, "set", "assignee"),
                    f"{where}.set.assignee",
                    f"must be keep or pool (got {value!r})",
                )

    # playbook recording
    if spec.playbook is not None:
        pb = spec.playbook
        known("state", pb.state, states, "playbook.state", ("playbook", "state"))
        for j, r in enumerate(pb.roles):
            known("role", r, roles, "playbook.roles", ("playbook", "roles", j))
        if (pb.on_solved, pb.state) not in seen:
            add(
                ("playbook", "on_solved"),
                "playbook.on_solved",
                f"trigger {pb.on_solved!r} is not defined from {pb.state!r}",
            )

    if spec.auto_close is not None:
        ac = spec.auto_close
        state_known = known("state", ac.state, states, "auto_close.state", ("auto_close", "state"))
        if state_known and (ac.trigger, ac.state) not in seen:
            add(
                ("auto_close", "trigger"),
                "auto_close.trigger",
                f"trigger {ac.trigger!r} is not defined from {ac.state!r}",
            )

    # SLA clocks
    for cname, clock in spec.sla.items():
        cloc: Loc = ("sla", cname)
        for key, hours in clock.target_hours.items():
            if key != "all" and key not in spec.priorities:
                add(
                    (*cloc, "target_hours", key),
                    f"sla.{cname}.target_hours",
                    f"unknown priority {key!r}",
                    key=True,
                )
            if hours <= 0:
                add(
                    (*cloc, "target_hours", key),
                    f"sla.{cname}.target_hours.{key}",
                    "must be greater than 0",
                )
        for j, s in enumerate(clock.pause_in):
            known("state", s, states, f"sla.{cname}.pause_in", (*cloc, "pause_in", j))

    if graph:
        found.extend(_graph_findings(spec))
        if guards_ok and spec.initial in states:
            found.extend(_intake_findings(spec, REGISTRY))
    return found


def _graph_findings(spec: DefinitionSpec) -> list[Finding]:
    """Reachability, traps and ways to a final state, over the edges whose ends are known."""
    definition = Definition(spec)
    found: list[Finding] = []
    out: dict[str, set[str]] = {s: set() for s in spec.states}
    for t, dest in definition.edges():
        if t.source in out and dest in out:
            out[t.source].add(dest)
    for t in definition.transitions:
        if t.dest == RETURN and t.source in out and not definition.return_targets(t.source):
            found.append(
                Finding(
                    ("transitions", t.index, "dest"),
                    f"transitions[{t.index}] ({t.trigger})",
                    f"dest '@return' from {t.source!r}, but no transition enters that state",
                )
            )
    finals = {s for s, st in spec.states.items() if st.final}
    if not finals:
        found.append(
            Finding(
                ("states",), "states", "no final state (mark at least one with final: true)", True
            )
        )
    if spec.initial in out:
        reachable = _closure({spec.initial}, out)
        for s in spec.states:
            if s not in reachable:
                found.append(
                    Finding(
                        ("states", s),
                        f"states.{s}",
                        f"unreachable from the initial state {spec.initial!r}",
                        True,
                    )
                )
    for s, st in spec.states.items():
        if not st.final and not out[s]:
            found.append(
                Finding(
                    ("states", s), f"states.{s}", "not final, but no transition leaves it", True
                )
            )
    if finals:
        incoming: dict[str, set[str]] = {s: set() for s in spec.states}
        for src, dests in out.items():
            for d in dests:
                incoming[d].add(src)
        can_finish = _closure(finals, incoming)
        for s in spec.states:
            if s not in can_finish and out[s]:
                found.append(
                    Finding(
                        ("states", s),
                        f"states.{s}",
                        f"no final state ({', '.join(sorted(finals))}) can be reached from it",
                        True,
                    )
                )
    return found


def resolution_states(spec: DefinitionSpec) -> set[str]:
    """Where a ticket counts as resolved: the non-final states of group ``done`` (or, in a
    definition without any, its final states)."""
    done = {s for s, st in spec.states.items() if st.group == "done" and not st.final}
    return done or {s for s, st in spec.states.items() if st.final}


def intake_dead_ends(
    spec: DefinitionSpec, registry: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """Every intake the create route accepts — (kind, category, channel) — from which no sequence
    of transitions whose guards can pass reaches a resolution state. The search walks (state,
    channel) pairs: guards reading the kind, category or channel decide statically
    (``Guard.admits``), a ``set: {channel: ...}`` moves the channel, and everything people can
    supply (notes, data, priority, playbook steps) is assumed supplied."""
    from .guards import Intake

    definition = Definition(spec)
    goals = resolution_states(spec)
    by_source: dict[str, list[tuple[Transition, str]]] = {s: [] for s in spec.states}
    for t, dest in definition.edges():
        if t.source in by_source and dest in by_source:  # edges whose ends are known
            by_source[t.source].append((t, dest))
    dead: list[tuple[str, str, str]] = []
    for kind, kspec in spec.kinds.items():
        for category in kspec.categories:
            for channel in spec.channels:
                start = (spec.initial, channel)
                seen = {start}
                todo = deque([start])
                found = spec.initial in goals
                while todo and not found:
                    state, chan = todo.popleft()
                    for t, dest in by_source[state]:
                        for proposed in (None, *spec.channels):
                            intake = Intake(kind, category, chan, proposed)
                            if not all(
                                registry[g.name].can_pass(spec, intake, g.args) for g in t.guards
                            ):
                                continue
                            nxt = _channel_after(t.set.get("channel"), chan, proposed)
                            if dest in goals:
                                found = True
                                break
                            if (dest, nxt) not in seen:
                                seen.add((dest, nxt))
                                todo.append((dest, nxt))
                        if found:
                            break
                if not found:
                    dead.append((kind, category, channel))
    return dead


def _channel_after(setting: Any, channel: str, proposed: str | None) -> str:
    if setting is None:
        return channel
    if isinstance(setting, str) and setting.startswith("$data."):
        return proposed if setting == "$data.channel" and proposed is not None else channel
    return str(setting)


def _intake_findings(spec: DefinitionSpec, registry: Mapping[str, Any]) -> list[Finding]:
    dead = intake_dead_ends(spec, registry)
    goals = ", ".join(sorted(resolution_states(spec)))
    grouped: dict[tuple[str, str], list[str]] = {}
    for kind, category, channel in dead:
        grouped.setdefault((kind, channel), []).append(category)
    return [
        Finding(
            ("kinds", kind),
            f"intake kind={kind} channel={channel}",
            f"accepted by the create route, but no transition path from {spec.initial!r} "
            f"reaches a resolution ({goals}) for categories {', '.join(cats)}",
            True,
        )
        for (kind, channel), cats in grouped.items()
    ]


def _closure(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = deque(start)
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
