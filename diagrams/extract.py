"""Definition (+ a ticket's history, or live counts) -> :class:`~diagrams.model.Diagram`.

Everything is read from the definition itself (:meth:`workflow.Definition.edges`, ``@return``
expanded into one edge per possible target): one node per state, one edge per
(trigger, source, destination), one cluster per state group, a start marker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from workflow import Definition, EventView, Option, TicketView
from workflow.definition import RETURN, GuardRef, Transition
from workflow.stats import StateStat

from . import theme
from .model import START, Cluster, Diagram, Edge, LegendItem, Node, Style

__all__ = [
    "SHOW_OPTIONS",
    "focus_diagram",
    "human_duration",
    "live_diagram",
    "parse_show",
    "ticket_diagram",
    "workflow_diagram",
]

SHOW_OPTIONS = ("guards", "roles")
"""What ``show`` may add to each edge's label."""


def parse_show(text: str | Iterable[str] | None) -> frozenset[str]:
    """``"guards,roles"`` (or an iterable of names) -> a validated frozenset.

    Raises ValueError naming the unknown entries.
    """
    if text is None:
        return frozenset()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = frozenset(i.strip() for i in items if i.strip())
    unknown = sorted(names - set(SHOW_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown show option(s) {', '.join(unknown)} (known: {', '.join(SHOW_OPTIONS)})"
        )
    return names


# --- the whole workflow ----------------------------------------------------------------------
def workflow_diagram(
    definition: Definition, show: Iterable[str] = frozenset(), *, grouped: bool = True
) -> Diagram:
    """The whole machine: states clustered by group, every edge labelled with its trigger and,
    per ``show``, its guards and roles.

    ``grouped`` (the default): a trigger leaving *every* state of a group, or of a run of whole
    groups (``cancel`` from any open state), is one edge from that cluster's border; an
    ``@return`` with several possible targets is one edge to the smallest cluster holding them
    all (see :func:`_group`). ``grouped=False`` keeps one edge per (trigger, source, dest).
    """
    show = parse_show(show)
    spec = definition.spec
    nodes = [Node(START, "start", kind="start", tooltip="start", classes=("start",))]
    for name, st in spec.states.items():
        classes = ("state", "final") if st.final else ("state",)
        nodes.append(
            Node(
                name,
                st.title or name,
                final=st.final,
                cluster=st.group,
                tooltip=f"{name} ({theme.GROUPS[st.group][0]})" + (", final" if st.final else ""),
                classes=classes,
            )
        )
    edges = [Edge(START, spec.initial, None, classes=("start",))]
    plain = [_edge(definition, t, dest, show) for t, dest in definition.edges()]
    used = {st.group for st in spec.states.values()}
    clusters = [
        Cluster(group, title, style)
        for group, (title, style) in theme.GROUPS.items()
        if group in used
    ]
    if grouped:
        plain, clusters = _group(definition, plain, clusters)
    edges += plain
    legend = [
        LegendItem("start", "start"),
        LegendItem("final state", "final", theme.S_NODE),
        LegendItem("edge label: trigger", "edge", theme.S_EDGE),
        LegendItem(
            "back to where it came from (@return)", "edge", theme.S_RETURN.over(theme.S_EDGE)
        ),
    ]
    if "guards" in show:
        legend.append(LegendItem("if …: guards", "edge", theme.S_EDGE))
    if "roles" in show:
        legend.append(LegendItem("by …: roles", "edge", theme.S_EDGE))
    title = f"{spec.title or definition.name} — {definition.name} {definition.version}"
    return Diagram(
        definition.name, title, tuple(nodes), tuple(edges), tuple(clusters), tuple(legend)
    )


# --- one state's neighbourhood ---------------------------------------------------------------
def focus_diagram(definition: Definition, state: str, show: Iterable[str] = frozenset()) -> Diagram:
    """One state, every transition leading into it and out of it, and the states at their other
    ends (each in its group's cluster). ValueError naming the state when there is none."""
    if state not in definition.spec.states:
        known = ", ".join(definition.spec.states)
        raise ValueError(f"unknown state {state!r} (known: {known})")
    base = workflow_diagram(definition, show, grouped=False)
    edges = [e for e in base.edges if state in (e.source, e.dest)]
    keep = {state} | {e.source for e in edges} | {e.dest for e in edges}
    nodes = []
    for n in base.nodes:
        if n.id not in keep:
            continue
        if n.id == state:
            n = replace(
                n, style=theme.S_CURRENT.over(n.style), classes=(*n.classes, "focus", "current")
            )
        nodes.append(n)
    groups = {n.cluster for n in nodes}
    spec = definition.spec
    return replace(
        base,
        name=f"focus_{state}",
        title=f"{spec.states[state].title or state}: what leads in, what leads out — "
        f"{definition.name} {definition.version}",
        nodes=tuple(nodes),
        edges=tuple(edges),
        clusters=tuple(c for c in base.clusters if c.id in groups),
        legend=(
            LegendItem("the state in focus", "node", theme.S_CURRENT.over(theme.S_NODE)),
            *base.legend[2:],
        ),
    )


# --- grouping: one edge from (or to) a cluster instead of one per state ------------------------
def _group(
    definition: Definition, edges: list[Edge], clusters: list[Cluster]
) -> tuple[list[Edge], list[Cluster]]:
    """Replace the edges a cluster stands for by one edge from (or to) that cluster.

    A (trigger, destination) whose sources are exactly the states of one group, or of two or
    more whole groups, becomes one edge from that group's cluster, or from a *cover* cluster
    drawn around those groups. An ``@return`` trigger with several possible targets becomes
    one edge to the smallest cluster holding them all. Cover clusters nest (a cover that would
    overlap another without containing it is not made), and the ``covers`` and tooltip of the
    edge name every state it stands for.
    """
    spec = definition.spec
    order = list(spec.states)
    groups: dict[str, list[str]] = {}
    for name, st in spec.states.items():
        groups.setdefault(st.group, []).append(name)
    group_order = [c.id for c in clusters]

    fan_in: dict[tuple[str, str], list[Edge]] = {}
    returns: dict[tuple[str, str], list[Edge]] = {}
    for e in edges:
        if "return" in e.classes:
            returns.setdefault((e.trigger or "", e.source), []).append(e)
        else:
            fan_in.setdefault((e.trigger or "", e.dest), []).append(e)

    def groups_of(states: set[str]) -> frozenset[str] | None:
        """The groups whose states are exactly ``states`` (None when it cuts a group)."""
        gs = frozenset(spec.states[s].group for s in states)
        if set().union(*(groups[g] for g in gs)) != states:
            return None
        return gs

    # candidate covers (two or more whole groups), largest first, kept only if they nest
    wanted = {
        gs
        for members in fan_in.values()
        if _alike(definition, members)
        and (gs := groups_of({e.source for e in members})) is not None
        and len(gs) > 1
    }
    covers: list[frozenset[str]] = []
    for gs in sorted(wanted, key=lambda g: (-len(g), sorted(g))):
        if all(gs <= c or not gs & c for c in covers):
            covers.append(gs)
    cover_id = {gs: _cover_id([g for g in group_order if g in gs], group_order) for gs in covers}

    def parent_of(gs: frozenset[str]) -> str | None:
        outer = [c for c in covers if gs < c]
        return cover_id[min(outer, key=len)] if outer else None

    clusters = [replace(c, parent=parent_of(frozenset({c.id}))) for c in clusters]
    for gs in covers:
        names = [g for g in group_order if g in gs]
        titles = [theme.GROUPS[g][0] if g in theme.GROUPS else g for g in names]
        label = (
            f"{titles[0]} … {titles[-1]}" if _contiguous(names, group_order) else " + ".join(titles)
        )
        clusters.append(
            Cluster(
                cover_id[gs],
                label,
                theme.S_COVER,
                parent=parent_of(gs),
                tooltip="any state of: " + ", ".join(titles),
            )
        )
    # a cover is drawn before (around) the groups it holds
    clusters.sort(key=lambda c: (c.parent is not None, c.id not in cover_id.values()))

    def cluster_for(states: set[str], *, exact: bool) -> str | None:
        gs = groups_of(states)
        if gs is not None and len(gs) == 1 and len(states) > 1:
            return next(iter(gs))
        if gs is not None and gs in cover_id:
            return cover_id[gs]
        if exact:
            return None
        touched = frozenset(spec.states[s].group for s in states)
        if len(touched) == 1 and len(states) > 1:
            return next(iter(touched))
        holding = [c for c in covers if touched <= c]
        return cover_id[min(holding, key=len)] if holding else None

    def members_of(cluster: str) -> list[str]:
        gs = next((c for c in covers if cover_id[c] == cluster), frozenset({cluster}))
        return [s for s in order if spec.states[s].group in gs]

    def anchor(cluster: str) -> str:
        states = members_of(cluster)
        return states[(len(states) - 1) // 2]

    out: list[Edge] = []
    done: set[tuple[str, str, str]] = set()
    for e in edges:
        trigger = e.trigger or ""
        if "return" in e.classes:
            key = ("return", trigger, e.source)
            members = returns[(trigger, e.source)]
            cluster = cluster_for({m.dest for m in members}, exact=False)
            if cluster is None or len(members) < 2:
                out.append(e)
            elif key not in done:
                done.add(key)
                ends = [m.dest for m in members]
                out.append(
                    replace(
                        e,
                        dest=anchor(cluster),
                        head_cluster=cluster,
                        covers=tuple(ends),
                        detail=_merged_detail(members),
                        tooltip=f"{trigger}: {e.source} → back to where it came from, one of "
                        + ", ".join(ends)
                        + f"\nroles: {_roles_line(definition, trigger, e.source)}",
                        classes=(*e.classes, "group"),
                    )
                )
            continue
        members = fan_in[(trigger, e.dest)]
        cluster = (
            cluster_for({m.source for m in members}, exact=True)
            if _alike(definition, members)
            else None
        )
        if cluster is None or e.dest in members_of(cluster):
            out.append(e)
            continue
        key = ("from", trigger, e.dest)
        if key in done:
            continue
        done.add(key)
        starts = [m.source for m in members]
        tip = [f"{trigger}: from any of {', '.join(starts)} → {e.dest}"]
        tip += sorted({line for m in members for line in m.tooltip.split("\n")[1:]})
        out.append(
            replace(
                e,
                source=anchor(cluster),
                tail_cluster=cluster,
                covers=tuple(starts),
                detail=_merged_detail(members),
                tooltip="\n".join(tip),
                classes=(*e.classes, "group"),
            )
        )
    return out, clusters


def _alike(definition: Definition, members: list[Edge]) -> bool:
    """Several edges that differ only by their source and roles (the same guards)."""
    if len(members) < 2:
        return False
    guards = {
        tuple((g.name, repr(g.args)) for g in t.guards)
        for t in definition.transitions
        if any(t.trigger == m.trigger and t.source == m.source for m in members)
    }
    return len(guards) == 1


def _merged_detail(members: list[Edge]) -> tuple[str, ...]:
    """The members' label lines once each; their roles on one ``by …`` line."""
    lines: dict[str, None] = {}
    roles: dict[str, None] = {}
    for m in members:
        for line in m.detail:
            if line.startswith("by "):
                roles.update(dict.fromkeys(line[3:].split(", ")))
            else:
                lines[line] = None
    return (*lines, *([f"by {', '.join(roles)}"] if roles else []))


def _contiguous(names: list[str], order: list[str]) -> bool:
    at = [order.index(n) for n in names]
    return at == list(range(at[0], at[0] + len(at)))


def _cover_id(names: list[str], order: list[str]) -> str:
    if _contiguous(names, order):
        return f"any_{names[0]}_to_{names[-1]}"
    return "any_" + "_".join(names)


def _roles_line(definition: Definition, trigger: str, source: str) -> str:
    roles = {
        r
        for t in definition.spec.transitions
        if t.trigger == trigger and source in t.source
        for r in t.roles
    }
    return ", ".join(sorted(roles))


def _edge(definition: Definition, t: Transition, dest: str, show: frozenset[str]) -> Edge:
    roles = definition.spec.transitions[t.index].roles
    detail: list[str] = []
    if "guards" in show:
        detail += [f"if {_guard_short(g)}" for g in t.guards]
    if "roles" in show:
        detail.append(f"by {', '.join(roles)}")
    tip = [f"{t.trigger}: {t.source} → {dest}", f"roles: {', '.join(roles)}"]
    tip += [f"guard: {_guard_long(g)}" for g in t.guards]
    returning = t.dest == RETURN
    if returning:
        tip.append(f"only when the ticket entered {t.source} from {dest} (@return)")
    style = theme.S_RETURN if returning else Style()
    classes = ("transition", "return") if returning else ("transition",)
    return Edge(t.source, dest, t.trigger, tuple(detail), (), style, "\n".join(tip), classes)


def _guard_short(g: GuardRef) -> str:
    values = [str(v) for v in g.args.values() if not isinstance(v, (dict, list))]
    values += ["|".join(map(str, v)) for v in g.args.values() if isinstance(v, list)]
    inner = ", ".join(values)
    return f"{g.name}({inner})" if inner and len(inner) <= 20 else g.name


def _guard_long(g: GuardRef) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in g.args.items())
    return f"{g.name}({args})" + (f" — {g.hint}" if g.hint else "")


# --- one ticket ------------------------------------------------------------------------------
def ticket_diagram(
    definition: Definition,
    ticket: TicketView,
    events: Iterable[EventView],
    options: Iterable[Option],
    now: datetime,
    *,
    path_only: bool = False,
) -> Diagram:
    """The workflow with one ticket's story on it (``path_only``: only the states it visited
    and the transitions it took).

    ``definition`` must be the ticket's own version; ``events`` its history (any order: sorted
    by ``seq`` here); ``options`` what :meth:`workflow.Tierflow.explain` says for some role;
    ``now`` closes the current stay. The current state is highlighted; every visited state shows
    the wall-clock time spent there (all visits added up; final states show none); the edges the
    ticket took carry their step numbers (``#1`` = first transition); from the current state,
    triggers allowed now are solid, blocked ones dashed with the reasons as tooltip.
    """
    base = workflow_diagram(definition, grouped=False)
    history = sorted(events, key=lambda ev: ev.seq)
    entered = [
        ev for ev in history if ev.kind in ("created", "transition", "migrated") and ev.to_state
    ]

    spent: dict[str, float] = {}
    visits: dict[str, int] = {}
    for ev, nxt in zip(entered, [*entered[1:], None], strict=True):
        state = ev.to_state or ""
        until = nxt.at if nxt is not None else now
        spent[state] = spent.get(state, 0.0) + max(0.0, (until - ev.at).total_seconds())
        visits[state] = visits.get(state, 0) + 1

    steps: dict[tuple[str | None, str, str], list[int]] = {}
    moves = [ev for ev in entered if ev.kind == "transition"]
    for n, ev in enumerate(moves, start=1):
        steps.setdefault((ev.trigger, ev.from_state or "", ev.to_state or ""), []).append(n)

    current = ticket.state
    nodes = [_ticket_node(n, current, spent.get(n.id), visits.get(n.id, 0)) for n in base.nodes]

    by_key: dict[tuple[str | None, str, str], Option] = {
        (o.trigger, current, o.dest): o for o in options
    }
    edges = [_ticket_edge(e, current, steps.pop(e.key, []), by_key) for e in base.edges]
    known = {n.id for n in base.nodes}
    for (trigger, src, dst), taken in steps.items():  # history the definition does not draw
        if src in known and dst in known:
            edges.append(
                Edge(src, dst, trigger, steps=tuple(taken), style=theme.S_PATH, classes=("path",))
            )

    title = f"Ticket #{ticket.id}: {_clip(ticket.subject, 60)} — {definition.name} " + (
        f"{definition.version}, now in {current}"
    )
    legend: tuple[LegendItem, ...] = (
        LegendItem("current state", "node", theme.S_CURRENT.over(theme.S_NODE)),
        LegendItem("visited (time spent)", "node", theme.S_VISITED.over(theme.S_NODE)),
        LegendItem("#n: path taken, in order", "edge", theme.S_PATH),
        LegendItem("allowed now", "edge", theme.S_ALLOWED),
        LegendItem("blocked now (hover: why)", "edge", theme.S_BLOCKED),
    )
    clusters = base.clusters
    if path_only:
        nodes = [n for n in nodes if n.kind == "start" or "visited" in n.classes]
        edges = [e for e in edges if e.trigger is None or e.steps]
        clusters = tuple(c for c in clusters if any(n.cluster == c.id for n in nodes))
        legend = legend[:3]
    return replace(
        base,
        name=f"ticket_{ticket.id}",
        title=title,
        nodes=tuple(nodes),
        edges=tuple(edges),
        clusters=clusters,
        legend=legend,
    )


def _ticket_node(n: Node, current: str, seconds: float | None, visits: int) -> Node:
    if n.kind != "state":
        return n
    is_current = n.id == current
    detail = list(n.detail)
    if visits and not n.final:
        assert seconds is not None
        times = f"{visits} visits, " if visits > 1 else ""
        detail.append(times + human_duration(seconds) + (" so far" if is_current else ""))
    if is_current:
        style, classes = theme.S_CURRENT.over(n.style), (*n.classes, "visited", "current")
    elif visits:
        style, classes = theme.S_VISITED.over(n.style), (*n.classes, "visited")
    else:
        style, classes = theme.S_FADED_NODE.over(n.style), (*n.classes, "unvisited")
    return replace(n, detail=tuple(detail), style=style, classes=classes)


def _ticket_edge(
    e: Edge,
    current: str,
    taken: list[int],
    options: Mapping[tuple[str | None, str, str], Option],
) -> Edge:
    if e.trigger is None:
        return e
    classes = list(e.classes)
    style = theme.S_FADED_EDGE.over(e.style)
    tooltip = e.tooltip
    if taken:
        style = theme.S_PATH.over(style)
        classes.append("path")
    if e.source == current:
        option = options.get(e.key)
        if option is None:
            style = theme.S_UNAVAILABLE.over(style)
            classes.append("unavailable")
            tooltip = f"{e.trigger} → {e.dest}: not possible from here now\n{tooltip}"
        elif option.allowed:
            style = theme.S_ALLOWED.over(style)
            classes.append("allowed")
            tooltip = f"{e.trigger} → {e.dest}: allowed now"
        else:
            style = theme.S_BLOCKED.over(style)
            classes.append("blocked")
            why = "\n".join(f"- {r.message}" for r in option.reasons)
            tooltip = f"{e.trigger} → {e.dest}: blocked now\n{why}"
    return replace(e, steps=tuple(taken), style=style, tooltip=tooltip, classes=tuple(classes))


def human_duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h 05m``, ``2d 4h``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# --- live view -------------------------------------------------------------------------------
def live_diagram(
    definition: Definition, stats: Mapping[str, StateStat], *, account: str | None = None
) -> Diagram:
    """The workflow with one account's load on it (see :func:`workflow.stats.state_stats`).

    Each state shows its tickets now, those with a breached SLA clock, and the median time of
    completed stays; the fill darkens with the count (scaled to the busiest state), and a state
    holding a breached ticket gets a thick red border.
    """
    base = workflow_diagram(definition)
    busiest = max((s.count for s in stats.values()), default=0)
    nodes = []
    for n in base.nodes:
        st = stats.get(n.id)
        if n.kind != "state" or st is None:
            nodes.append(n)
            continue
        level = 0 if st.count == 0 else max(1, math.ceil(5 * st.count / busiest))
        style = Style(fill=theme.LOAD_PALETTE[level]).over(n.style)
        classes = [*n.classes, f"load{level}"]
        if st.breached:
            style = theme.S_BREACHED.over(style)
            classes.append("breached")
        line = f"{st.count} now" + (f" · {st.breached} breached" if st.breached else "")
        detail = [*n.detail, line]
        if st.median_seconds is not None:
            detail.append(f"median {human_duration(st.median_seconds)}")
        tip = f"{n.id}: {st.count} ticket(s) now, {st.breached} with a breached SLA clock; " + (
            f"median stay {human_duration(st.median_seconds)} over {st.samples} stay(s)"
            if st.median_seconds is not None
            else "no completed stay yet"
        )
        nodes.append(
            replace(n, detail=tuple(detail), style=style, tooltip=tip, classes=tuple(classes))
        )
    edges = tuple(replace(e, style=theme.S_LIVE_EDGE.over(e.style)) for e in base.edges)
    legend = [
        LegendItem(_load_range(level, busiest), "node", Style(fill=colour).over(theme.S_NODE))
        for level, colour in enumerate(theme.LOAD_PALETTE)
        if level == 0 or _load_range(level, busiest)
    ]
    legend.append(LegendItem("breached SLA", "node", theme.S_BREACHED.over(theme.S_NODE)))
    who = f"account {account}" if account else "live"
    title = f"{definition.name} {definition.version} — {who}: tickets per state now"
    return replace(
        base,
        name=f"live_{definition.name}",
        title=title,
        nodes=tuple(nodes),
        edges=edges,
        legend=tuple(legend),
    )


def _load_range(level: int, busiest: int) -> str:
    """The counts that get fill ``level`` (``""`` when none can)."""
    if level == 0:
        return "0 tickets"
    lo = max(1, math.floor(busiest * (level - 1) / 5) + 1)
    hi = math.floor(busiest * level / 5)
    if hi < lo:
        return ""
    return f"{lo}" if lo == hi else f"{lo}-{hi}"
