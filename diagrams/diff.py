"""Two versions of a workflow -> one :class:`~diagrams.model.Diagram` with what changed marked.

Drawn on the newer version (one edge per transition, so each can be marked): added states and
transitions in green, removed ones (taken from the older version) in red and dashed, changed
ones in amber, everything else faded. Each marked element says what changed in its tooltip and
in a label line (``+ added``, ``- removed``, ``~ guards``...), which Mermaid shows as well; the
title names calendar and SLA changes, which have no place on the graph. The legend explains the
colours (for Mermaid, which draws no legend, ``legend_nodes`` adds it as three styled states).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from workflow import Definition
from workflow.diff import DefinitionDiff, diff, transition_key

from . import theme
from .extract import parse_show, workflow_diagram
from .model import Cluster, Diagram, Edge, LegendItem, Node, Style

__all__ = ["diff_diagram"]

S_ADDED = Style(fill="#e8f5e9", color="#2e7d32", fontcolor="#1b5e20", width=2.5, line="solid")
S_REMOVED = Style(fill="#ffebee", color="#c62828", fontcolor="#b71c1c", width=2.0, line="dashed")
S_CHANGED = Style(fill="#fff8e1", color="#ef6c00", fontcolor="#e65100", width=2.5, line="solid")
S_SAME_NODE = theme.S_FADED_NODE
S_SAME_EDGE = theme.S_FADED_EDGE


def diff_diagram(
    old: Definition,
    new: Definition,
    show: Iterable[str] = frozenset(),
    *,
    legend_nodes: bool = False,
) -> Diagram:
    """``new`` with what changed since ``old`` marked (see the module docstring)."""
    shown = parse_show(show)
    d = diff(old, new)
    base = workflow_diagram(new, shown, grouped=False)
    before = workflow_diagram(old, shown, grouped=False)
    added_states = {e["key"] for e in d.states.added}
    changed_states = {e["key"]: e for e in d.states.changed}
    removed_states = {e["key"] for e in d.states.removed}

    nodes: list[Node] = []
    for n in base.nodes:
        if n.kind != "state":
            nodes.append(n)
        elif n.id in added_states:
            nodes.append(_mark(n, S_ADDED, "added", "+ added", f"{n.id}: added"))
        elif n.id in changed_states:
            what = ", ".join(changed_states[n.id]["after"])
            tip = f"{n.id}: changed {_before_after(changed_states[n.id])}"
            nodes.append(_mark(n, S_CHANGED, "changed", f"~ {what}", tip))
        else:
            nodes.append(replace(n, style=S_SAME_NODE.over(n.style), classes=(*n.classes, "same")))
    for n in before.nodes:
        if n.id in removed_states:
            nodes.append(_mark(n, S_REMOVED, "removed", "- removed", f"{n.id}: removed"))

    changes = _edge_changes(d)
    new_keys = {e.key for e in base.edges}
    old_keys = {e.key for e in before.edges}
    edges: list[Edge] = []
    for e in base.edges:
        if e.trigger is None:
            edges.append(e)
            continue
        key = transition_key(e.trigger, e.source)
        if key in {a["key"] for a in d.transitions.added}:
            edges.append(_mark_edge(e, S_ADDED, "added", ["+ added"], [f"{key}: added"]))
        elif e.key not in old_keys:  # an @return that can now go back to another state
            tip = f"{key} → {e.dest}: a new way back (@return)"
            edges.append(_mark_edge(e, S_ADDED, "added", ["+ added"], [tip]))
        elif key in changes:
            lines = changes[key]
            parts = ", ".join(sorted({line.split(":", 1)[0] for line in lines}))
            edges.append(_mark_edge(e, S_CHANGED, "changed", [f"~ {parts}"], lines))
        else:
            edges.append(replace(e, style=S_SAME_EDGE.over(e.style), classes=(*e.classes, "same")))
    for e in before.edges:
        if e.trigger is None or e.key in new_keys:
            continue
        key = transition_key(e.trigger, e.source)
        why = "removed" if key in {r["key"] for r in d.transitions.removed} else "destination"
        edges.append(
            _mark_edge(e, S_REMOVED, "removed", ["- removed"], [f"{key} → {e.dest}: {why}"])
        )

    clusters = list(base.clusters)
    have = {c.id for c in clusters}
    for c in before.clusters:
        if c.id not in have and any(n.cluster == c.id for n in nodes):
            clusters.append(c)
    legend = (
        LegendItem("added", "node", S_ADDED),
        LegendItem("removed", "node", S_REMOVED),
        LegendItem("changed", "node", S_CHANGED),
        LegendItem("unchanged", "node", S_SAME_NODE.over(theme.S_NODE)),
        LegendItem("added transition", "edge", S_ADDED),
        LegendItem("removed transition", "edge", S_REMOVED),
        LegendItem("changed transition", "edge", S_CHANGED),
    )
    if legend_nodes:
        clusters.append(Cluster("legend", "Legend", Style(fill="#ffffff", color="#cfd8dc")))
        nodes += [
            Node(f"legend_{kind}", kind, cluster="legend", style=style, classes=("legend", kind))
            for kind, style in (("added", S_ADDED), ("removed", S_REMOVED), ("changed", S_CHANGED))
        ]
    return Diagram(
        f"diff_{new.name}",
        _title(d),
        tuple(nodes),
        tuple(edges),
        tuple(clusters),
        legend,
        base.direction,
    )


def _mark(n: Node, style: Style, cls: str, line: str, tooltip: str) -> Node:
    return replace(
        n,
        detail=(*n.detail, line),
        style=style.over(n.style),
        tooltip=tooltip,
        classes=(*n.classes, cls),
    )


def _mark_edge(e: Edge, style: Style, cls: str, lines: list[str], tips: list[str]) -> Edge:
    return replace(
        e,
        detail=(*e.detail, *lines),
        style=style.over(e.style),
        tooltip="\n".join([*tips, e.tooltip]),
        classes=(*e.classes, cls),
    )


def _edge_changes(d: DefinitionDiff) -> dict[str, list[str]]:
    """transition key -> what changed about it (``guards: ...``, ``roles: ...``, ``dest: ...``)."""
    out: dict[str, list[str]] = {}
    for e in d.transitions.changed:
        for f in e["after"]:
            out.setdefault(e["key"], []).append(f"{f}: {e['before'][f]!r} → {e['after'][f]!r}")
    for kind in ("added", "removed", "changed"):
        for e in getattr(d.guards, kind):
            key, guard = e["key"].split(" ", 1)
            out.setdefault(key, []).append(f"guards: {guard} {kind}")
    for e in d.roles.changed:
        if e["key"].startswith("who fires "):
            key = e["key"].removeprefix("who fires ")
            out.setdefault(key, []).append(
                f"roles: {', '.join(e['before'])} → {', '.join(e['after'])}"
            )
    return out


def _before_after(e: dict[str, object]) -> str:
    before, after = e["before"], e["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    return "; ".join(f"{f}: {before.get(f)!r} → {after.get(f)!r}" for f in after)


def _title(d: DefinitionDiff) -> str:
    parts = [f"{d.name} {d.from_version} → {d.to_version}"]
    if d.calendar:
        keys = [e["key"] for k in ("added", "removed", "changed") for e in getattr(d.calendar, k)]
        parts.append("calendar: " + ", ".join(keys))
    if d.sla:
        keys = [e["key"] for k in ("added", "removed", "changed") for e in getattr(d.sla, k)]
        parts.append("SLA: " + ", ".join(keys))
    if d.other:
        parts.append("also: " + ", ".join(d.other))
    if d.empty:
        parts.append("no differences")
    return " · ".join(parts)
