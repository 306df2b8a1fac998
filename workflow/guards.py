"""Named guard functions.

A definition names guards (``{name: note_given, args: {purpose: ...}}``); their implementations
live here, registered by name. A guard receives the :class:`GuardContext` of one attempted
transition and its keyword arguments, and returns ``None`` to let it pass or a reason a person
can act on. Validation rejects unknown guard names and wrong arguments before a definition is
used (see :meth:`Guard.check_args`).

Each guard also says what it asks for as a plain sentence, without a ticket: ``describe(spec,
**args)``, worded like its reasons ("a note is required: ..."), so a designer reads the rule and
a person who is refused reads the same words with the ticket's facts (see :func:`sentence`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .definition import Definition, DefinitionSpec, GuardRef
    from .history import TicketState

__all__ = ["REGISTRY", "Guard", "GuardContext", "Intake", "guard", "sentence"]


@dataclass(slots=True)
class GuardContext:
    """Everything a guard may look at: the ticket, the request and the definition."""

    ticket: TicketState
    definition: Definition
    role: str
    note: str | None
    data: Mapping[str, Any]
    now: datetime


@dataclass(frozen=True, slots=True)
class Intake:
    """What validation knows of a ticket on its way: its kind, category and current channel, and
    the ``data.channel`` a request may give (None: none given). Every other input a guard reads
    (notes, data, priority, playbook steps, time) can be supplied by the people working it."""

    kind: str
    category: str
    channel: str
    data_channel: str | None


GuardFn = Callable[..., str | None]
ArgCheck = Callable[["DefinitionSpec", dict[str, Any]], list[str]]
Admits = Callable[..., bool]
"""``admits(spec, intake, **args)``: can this guard pass for a ticket of that intake?"""
Describe = Callable[..., str]
"""``describe(spec, **args)``: what the guard asks for, as a plain sentence."""


@dataclass(frozen=True)
class Guard:
    name: str
    fn: GuardFn
    required: frozenset[str]
    optional: frozenset[str]
    check: ArgCheck | None
    describe: Describe
    admits: Admits | None = None
    """Static counterpart for validation's intake analysis; None: input can always satisfy it."""

    def can_pass(self, spec: DefinitionSpec, intake: Intake, args: Mapping[str, Any]) -> bool:
        return True if self.admits is None else self.admits(spec, intake, **args)

    def __call__(self, ctx: GuardContext, args: Mapping[str, Any]) -> str | None:
        return self.fn(ctx, **args)

    def check_args(self, spec: DefinitionSpec, args: dict[str, Any]) -> list[str]:
        problems = [f"args: missing {a!r}" for a in sorted(self.required - args.keys())]
        takes = ", ".join(sorted(self.required | self.optional)) or "none"
        problems += [
            f"args: unexpected {a!r} (takes: {takes})"
            for a in sorted(args.keys() - self.required - self.optional)
        ]
        if not problems and self.check is not None:
            problems += self.check(spec, args)
        return problems


REGISTRY: dict[str, Guard] = {}


def guard(
    name: str,
    *,
    describe: Describe,
    check: ArgCheck | None = None,
    admits: Admits | None = None,
) -> Callable[[GuardFn], GuardFn]:
    """Register ``fn(ctx, *, arg...) -> reason | None`` under ``name``; ``describe(spec,
    *, arg...)`` says what it asks for; ``admits`` tells validation whether it can pass for a
    given :class:`Intake` (guards reading the ticket's kind, category or channel must give
    one)."""

    def register(fn: GuardFn) -> GuardFn:
        params = list(inspect.signature(fn).parameters.values())[1:]
        required = frozenset(p.name for p in params if p.default is inspect.Parameter.empty)
        optional = frozenset(p.name for p in params if p.default is not inspect.Parameter.empty)
        REGISTRY[name] = Guard(name, fn, required, optional, check, describe, admits)
        return fn

    return register


def sentence(spec: DefinitionSpec, ref: GuardRef) -> str:
    """A guard as a definition declares it (name, arguments, hint), as one plain sentence: the
    guard's description, then its hint after "; " exactly as a refusal appends it."""
    text = REGISTRY[ref.name].describe(spec, **ref.args)
    return f"{text}; {ref.hint}" if ref.hint else text


# --- argument checks ---------------------------------------------------------------------
def _level_channels(spec: DefinitionSpec, args: dict[str, Any]) -> list[str]:
    level = args["level"]
    if level not in spec.level_channels:
        return [f"args.level: no channels for {level!r} in level_channels"]
    return []


def _known_level(spec: DefinitionSpec, args: dict[str, Any]) -> list[str]:
    levels = ("level1", "level2", "level3", "administrative")
    return [] if args["level"] in levels else [f"args.level: unknown level {args['level']!r}"]


def _known_kind(spec: DefinitionSpec, args: dict[str, Any]) -> list[str]:
    return [] if args["kind"] in spec.kinds else [f"args.kind: unknown kind {args['kind']!r}"]


def _admin_classes(spec: DefinitionSpec, args: dict[str, Any]) -> list[str]:
    bad = [c for c in args["allowed"] if c not in ("A", "B")]
    return [f"args.allowed: unknown admin class(es) {bad}"] if bad else []


def _values_list(spec: DefinitionSpec, args: dict[str, Any]) -> list[str]:
    v = args["values"]
    return [] if isinstance(v, list) and v else ["args.values: must be a non-empty list"]


# --- the guards ----------------------------------------------------------------------------
def _served(spec: DefinitionSpec, level: str) -> str:
    return ", ".join(spec.level_channels[level])


def _listed(values: list[Any]) -> str:
    return ", ".join(map(str, values))


def _category(spec: DefinitionSpec, intake: Intake) -> Any:
    return spec.kinds[intake.kind].categories.get(intake.category)


@guard(
    "kind_is",
    describe=lambda spec, *, kind: f"this trigger is for {kind} tickets",
    check=_known_kind,
    admits=lambda spec, i, *, kind: i.kind == kind,
)
def kind_is(ctx: GuardContext, *, kind: str) -> str | None:
    if ctx.ticket.kind == kind:
        return None
    return f"ticket is {ctx.ticket.kind}, this trigger is for {kind} tickets"


@guard(
    "channel_allowed",
    describe=lambda spec, *, level: (
        f"the channel must be one served at {level} ({_served(spec, level)})"
    ),
    check=_level_channels,
    admits=lambda spec, i, *, level: i.channel in spec.level_channels[level],
)
def channel_allowed(ctx: GuardContext, *, level: str) -> str | None:
    allowed = ctx.definition.spec.level_channels[level]
    if ctx.ticket.channel in allowed:
        return None
    return (
        f"channel {ctx.ticket.channel!r} is not served at {level} (allowed: {', '.join(allowed)})"
    )


@guard(
    "priority_known",
    describe=lambda spec: "the priority must be known: complexity and urgency set",
)
def priority_known(ctx: GuardContext) -> str | None:
    missing = [f for f in ("complexity", "urgency") if getattr(ctx.ticket, f) is None]
    if not missing:
        return None
    return f"priority unknown: set {' and '.join(missing)} first"


@guard(
    "category_level",
    describe=lambda spec, *, level: f"the category must be handled at {level}",
    check=_known_level,
    admits=lambda spec, i, *, level: getattr(_category(spec, i), "level", None) == level,
)
def category_level(ctx: GuardContext, *, level: str) -> str | None:
    cat = ctx.definition.category(ctx.ticket.kind, ctx.ticket.category)
    actual = cat.level if cat else None
    if actual == level:
        return None
    return f"category {ctx.ticket.category!r} is handled at {actual}, not {level}"


@guard(
    "category_beyond",
    describe=lambda spec, *, level: (
        f"the category must not be in the {level} catalogue "
        "(one that is works through its playbook first: start_solving)"
    ),
    check=_known_level,
    admits=lambda spec, i, *, level: getattr(_category(spec, i), "level", None) != level,
)
def category_beyond(ctx: GuardContext, *, level: str) -> str | None:
    cat = ctx.definition.category(ctx.ticket.kind, ctx.ticket.category)
    if cat is None or cat.level != level:
        return None
    return (
        f"category {ctx.ticket.category!r} is in the {level} catalogue: "
        "work through its playbook first (start_solving)"
    )


@guard(
    "channel_moved_to",
    describe=lambda spec, *, level: (
        f"the conversation must be on a {level} channel ({_served(spec, level)}), "
        "or data.channel must move it to one"
    ),
    check=_level_channels,
    admits=lambda spec, i, *, level: (i.data_channel or i.channel) in spec.level_channels[level],
)
def channel_moved_to(ctx: GuardContext, *, level: str) -> str | None:
    """The conversation is on one of ``level``'s channels, or ``data.channel`` moves it to one
    (the transition's ``set: {channel: $data.channel}`` records the move in the event)."""
    allowed = ctx.definition.spec.level_channels[level]
    value = ctx.data.get("channel")
    if value is None:
        if ctx.ticket.channel in allowed:
            return None
        return (
            f"channel {ctx.ticket.channel!r} is not served at {level}: give data.channel to move "
            f"the conversation to a {level} channel ({', '.join(allowed)})"
        )
    if value in allowed:
        return None
    return f"data.channel {value!r} is not a {level} channel (allowed: {', '.join(allowed)})"


@guard(
    "data_channel",
    describe=lambda spec, *, level: (
        f"data.channel is required: choose the {level} channel ({_served(spec, level)})"
    ),
    check=_level_channels,
    admits=lambda spec, i, *, level: i.data_channel in spec.level_channels[level],
)
def data_channel(ctx: GuardContext, *, level: str) -> str | None:
    allowed = ctx.definition.spec.level_channels[level]
    value = ctx.data.get("channel")
    if value is None:
        return f"data.channel is required: choose the {level} channel ({', '.join(allowed)})"
    if value in allowed:
        return None
    return f"data.channel {value!r} is not a {level} channel (allowed: {', '.join(allowed)})"


@guard(
    "playbook_exhausted",
    describe=lambda spec: (
        "every step of the category's playbook must be tried in order before escalating"
    ),
)
def playbook_exhausted(ctx: GuardContext) -> str | None:
    cat = ctx.definition.category(ctx.ticket.kind, ctx.ticket.category)
    steps = cat.playbook if cat else []
    done = ctx.ticket.playbook_position
    if done >= len(steps):
        return None
    step = steps[done]
    return (
        f"playbook step {done + 1} of {len(steps)} ({step.id}: {step.title}) not tried yet; "
        "every step must be tried in order before escalating"
    )


@guard("note_given", describe=lambda spec, *, purpose: f"a note is required: {purpose}")
def note_given(ctx: GuardContext, *, purpose: str) -> str | None:
    if ctx.note is not None and ctx.note.strip():
        return None
    return f"a note is required: {purpose}"


@guard("data_true", describe=lambda spec, *, field: f"data.{field} must be true")
def data_true(ctx: GuardContext, *, field: str) -> str | None:
    value = ctx.data.get(field)
    if value is True:
        return None
    got = "missing" if value is None else f"got {value!r}"
    return f"data.{field} must be true ({got})"


@guard(
    "data_positive",
    describe=lambda spec, *, field: f"data.{field} must be a number greater than 0",
)
def data_positive(ctx: GuardContext, *, field: str) -> str | None:
    value = ctx.data.get(field)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return None
    got = "missing" if value is None else f"got {value!r}"
    return f"data.{field} must be a number greater than 0 ({got})"


@guard(
    "data_one_of",
    describe=lambda spec, *, field, values: f"data.{field} must be one of {_listed(values)}",
    check=_values_list,
)
def data_one_of(ctx: GuardContext, *, field: str, values: list[Any]) -> str | None:
    value = ctx.data.get(field)
    if value in values:
        return None
    got = "missing" if value is None else f"got {value!r}"
    return f"data.{field} must be one of {_listed(values)} ({got})"


@guard(
    "admin_class",
    describe=lambda spec, *, allowed: (
        f"the category must be administrative class {'/'.join(allowed)}"
    ),
    check=_admin_classes,
    admits=lambda spec, i, *, allowed: getattr(_category(spec, i), "admin_class", None) in allowed,
)
def admin_class(ctx: GuardContext, *, allowed: list[str]) -> str | None:
    cat = ctx.definition.category(ctx.ticket.kind, ctx.ticket.category)
    actual = cat.admin_class if cat else None
    if actual in allowed:
        return None
    wanted = "/".join(allowed)
    return f"category {ctx.ticket.category!r} is administrative class {actual}, not {wanted}"


@guard(
    "within_reopen_window",
    describe=lambda spec: (
        f"reopening is allowed within {spec.reopen_window_days:g} days of the resolution "
        "(open a new ticket instead)"
    ),
)
def within_reopen_window(ctx: GuardContext) -> str | None:
    days = ctx.definition.spec.reopen_window_days
    since = ctx.now - ctx.ticket.state_entered_at
    if since <= timedelta(days=days):
        return None
    return (
        f"resolved {_human(since)} ago; reopening is allowed within {days:g} days "
        "(open a new ticket instead)"
    )


def _human(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        return f"{delta.days} day(s)"
    return f"{int(delta.total_seconds() // 3600)} hour(s)"
