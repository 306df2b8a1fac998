"""Workflow definitions: the YAML schema, loading, semantic validation and the content hash.

A definition is data. Its schema is checked by pydantic (shape, types, enums); its meaning by
:func:`validate` (names that must exist, reachability, the priority matrix, guard arguments...),
which lists *every* problem it finds instead of stopping at the first.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .calendar import BusinessCalendar, CalendarSpec
from .errors import DefinitionError, Problem

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
SETTABLE_FIELDS = ("channel", "outcome")


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
    data: Any, *, source: str = "definition", text: str | None = None, check: bool = True
) -> Definition:
    """Check shape and meaning; raise :class:`DefinitionError` listing every problem.
    ``check=False`` checks the shape only (a stored version, validated when published)."""
    try:
        spec = DefinitionSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise DefinitionError(problems, source) from None
    problems = validate(spec) if check else []
    if problems:
        raise DefinitionError(problems, source)
    return Definition(spec, text, source)


def load_definition(path: str | Path) -> Definition:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError([f"cannot read file: {exc.strerror}"], str(path)) from None
    return parse_text(text, source=str(path))


def parse_text(text: str, *, source: str = "definition", check: bool = True) -> Definition:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError([f"not valid YAML: {exc}"], source) from None
    if not isinstance(data, dict):
        raise DefinitionError(["the top level must be a mapping"], source)
    return parse_definition(data, source=source, text=text, check=check)


def check_text(text: str, *, name: str | None = None, source: str = "definition") -> Definition:
    """:func:`parse_text`, and when ``name`` is given the definition must carry that name."""
    d = parse_text(text, source=source)
    if name is not None and d.name != name:
        problem = Problem("name", f"{d.name!r} is not {name!r}, the workflow published to")
        raise DefinitionError([problem], source)
    return d


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
def validate(spec: DefinitionSpec) -> list[str]:
    """Every semantic problem of a schema-valid definition, as ``path: message`` lines."""
    from .guards import REGISTRY  # guards depend on definitions, not the other way round

    problems: list[str] = []
    states = spec.states
    roles = set(spec.roles) | set(spec.role_groups) | {"admin"}

    def known(kind: str, name: str, pool: Any, where: str) -> bool:
        if name in pool:
            return True
        problems.append(f"{where}: unknown {kind} {name!r} (known: {', '.join(sorted(pool))})")
        return False

    known("state", spec.initial, states, "initial")
    for group, members in spec.role_groups.items():
        for r in members:
            known("role", r, spec.roles, f"role_groups.{group}")
    for key, chans in spec.level_channels.items():
        for c in chans:
            known("channel", c, spec.channels, f"level_channels.{key}")

    # priority matrix: every urgency x complexity cell, each a known priority
    for u in spec.urgency:
        row = spec.priority_matrix.get(u)
        if row is None:
            problems.append(f"priority_matrix: missing row for urgency {u!r}")
            continue
        for c in spec.complexity:
            if c not in row:
                problems.append(f"priority_matrix.{u}: missing cell for complexity {c!r}")
            elif row[c] not in spec.priorities:
                problems.append(
                    f"priority_matrix.{u}.{c}: unknown priority {row[c]!r} "
                    f"(known: {', '.join(spec.priorities)})"
                )
        for c in row:
            if c not in spec.complexity:
                problems.append(f"priority_matrix.{u}: unknown complexity {c!r}")
    for u in spec.priority_matrix:
        if u not in spec.urgency:
            problems.append(f"priority_matrix: unknown urgency {u!r}")

    # categories
    for kname, kind in spec.kinds.items():
        for cname, cat in kind.categories.items():
            where = f"kinds.{kname}.categories.{cname}"
            if cat.level is None and cat.admin_class is None:
                problems.append(f"{where}: needs a level or an admin_class")
            ids = [s.id for s in cat.playbook]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                problems.append(f"{where}.playbook: duplicate step id(s) {', '.join(dupes)}")

    # transitions
    seen: dict[tuple[str, str], int] = {}
    for i, t in enumerate(spec.transitions):
        where = f"transitions[{i}] ({t.trigger})"
        for s in t.source:
            if known("state", s, states, f"{where}.source") and states[s].final:
                problems.append(f"{where}.source: {s!r} is final; nothing leaves a final state")
            if (t.trigger, s) in seen:
                problems.append(
                    f"{where}: trigger {t.trigger!r} from {s!r} is already defined by "
                    f"transitions[{seen[(t.trigger, s)]}]"
                )
            seen.setdefault((t.trigger, s), i)
        if t.dest != RETURN:
            known("state", t.dest, states, f"{where}.dest")
        for r in t.roles:
            known("role", r, roles, f"{where}.roles")
        for g_i, g in enumerate(t.guards):
            gwhere = f"{where}.guards[{g_i}]"
            guard = REGISTRY.get(g.name)
            if guard is None:
                problems.append(
                    f"{gwhere}.name: unknown guard {g.name!r} "
                    f"(known: {', '.join(sorted(REGISTRY))})"
                )
                continue
            problems.extend(f"{gwhere}: {p}" for p in guard.check_args(spec, g.args))
        for field, value in t.set.items():
            if field not in SETTABLE_FIELDS:
                problems.append(
                    f"{where}.set: field {field!r} cannot be set "
                    f"(settable: {', '.join(SETTABLE_FIELDS)})"
                )
            elif field == "channel" and not (
                isinstance(value, str) and (value.startswith("$data.") or value in spec.channels)
            ):
                problems.append(f"{where}.set.channel: unknown channel {value!r}")

    # playbook recording
    if spec.playbook is not None:
        pb = spec.playbook
        known("state", pb.state, states, "playbook.state")
        for r in pb.roles:
            known("role", r, roles, "playbook.roles")
        if (pb.on_solved, pb.state) not in seen:
            problems.append(
                f"playbook.on_solved: trigger {pb.on_solved!r} is not defined from {pb.state!r}"
            )

    if spec.auto_close is not None:
        ac = spec.auto_close
        if (
            known("state", ac.state, states, "auto_close.state")
            and (
                ac.trigger,
                ac.state,
            )
            not in seen
        ):
            problems.append(
                f"auto_close.trigger: trigger {ac.trigger!r} is not defined from {ac.state!r}"
            )

    # SLA clocks
    for cname, clock in spec.sla.items():
        for key, hours in clock.target_hours.items():
            if key != "all" and key not in spec.priorities:
                problems.append(f"sla.{cname}.target_hours: unknown priority {key!r}")
            if hours <= 0:
                problems.append(f"sla.{cname}.target_hours.{key}: must be greater than 0")
        for s in clock.pause_in:
            known("state", s, states, f"sla.{cname}.pause_in")

    if problems:  # the graph checks below need a consistent graph
        return problems
    problems.extend(_graph_problems(spec))
    if not problems:
        problems.extend(_intake_problems(spec, REGISTRY))
    return problems


def _graph_problems(spec: DefinitionSpec) -> list[str]:
    definition = Definition(spec)
    problems: list[str] = []
    out: dict[str, set[str]] = {s: set() for s in spec.states}
    for t, dest in definition.edges():
        out[t.source].add(dest)
    for t in definition.transitions:
        if t.dest == RETURN and not definition.return_targets(t.source):
            problems.append(
                f"transitions[{t.index}] ({t.trigger}): dest '@return' from {t.source!r}, "
                "but no transition enters that state"
            )
    finals = {s for s, st in spec.states.items() if st.final}
    if not finals:
        problems.append("states: no final state (mark at least one with final: true)")

    reachable = _closure({spec.initial}, out)
    for s in spec.states:
        if s not in reachable:
            problems.append(f"states.{s}: unreachable from the initial state {spec.initial!r}")
    for s, st in spec.states.items():
        if not st.final and not out[s]:
            problems.append(f"states.{s}: not final, but no transition leaves it")
    if finals:
        incoming: dict[str, set[str]] = {s: set() for s in spec.states}
        for src, dests in out.items():
            for d in dests:
                incoming[d].add(src)
        can_finish = _closure(finals, incoming)
        for s in spec.states:
            if s not in can_finish and out[s]:
                problems.append(
                    f"states.{s}: no final state ({', '.join(sorted(finals))}) "
                    "can be reached from it"
                )
    return problems


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


def _intake_problems(spec: DefinitionSpec, registry: Mapping[str, Any]) -> list[str]:
    dead = intake_dead_ends(spec, registry)
    goals = ", ".join(sorted(resolution_states(spec)))
    grouped: dict[tuple[str, str], list[str]] = {}
    for kind, category, channel in dead:
        grouped.setdefault((kind, channel), []).append(category)
    return [
        f"intake kind={kind} channel={channel}: accepted by the create route, but no transition "
        f"path from {spec.initial!r} reaches a resolution ({goals}) for categories "
        f"{', '.join(cats)}"
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
