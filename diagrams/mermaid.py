"""Diagram -> Mermaid ``stateDiagram-v2`` (renders in GitHub / GitLab markdown).

Mermaid cannot draw transitions between states of *different* composite states, and every
transition here crosses groups, so groups are not composite states: each group is a
``classDef`` colour instead (a state with its own emphasis - current, visited, load - takes
that instead). An edge the extraction drew from (or to) a whole cluster (``cancel`` from any
open state, ``@return`` back to any working state) is one arrow from (or to) a dashed stand-in
state ``any_…`` titled with the groups it covers, not one arrow per state. The start marker
and final states use Mermaid's ``[*]``. Edge labels are one line: step numbers, trigger, then
any detail lines joined with `` · ``. Checked against Mermaid 11's parser while writing this;
the tests check the structure.
"""

from __future__ import annotations

import re

from . import theme
from .model import Diagram, Node, Style

__all__ = ["to_mermaid"]

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset({"state", "note", "class", "classDef", "direction", "end", "as", "style"})


def to_mermaid(diagram: Diagram) -> str:
    ids = _ids(diagram)
    out = [
        f"%% {_one_line(diagram.title)}",
        "stateDiagram-v2",
        f"    direction {diagram.direction}",
    ]

    styles: dict[Style, str] = {}
    members: dict[str, list[str]] = {}
    clusters = {c.id: c for c in diagram.clusters}
    for n in diagram.nodes:
        if n.kind != "state":
            continue
        if n.style != Style():
            style, name = n.style, n.classes[-1] if n.classes else "node"
        elif n.cluster in clusters:
            style, name = clusters[n.cluster].style, n.cluster or "group"
        else:
            continue
        if style not in styles:
            taken = set(styles.values())
            name = f"{name}_" if name in _RESERVED else name
            unique, k = name, 2
            while unique in taken:
                unique, k = f"{name}_{k}", k + 1
            styles[style] = unique
        members.setdefault(styles[style], []).append(ids[n.id])
    out += [f"    classDef {name} {_css(style)}" for style, name in styles.items()]

    for n in diagram.nodes:
        if n.kind == "state":
            out.append(f'    state "{_description(n)}" as {ids[n.id]}')
    stand_ins: dict[str, str] = {}
    for e in diagram.edges:
        for cid in (e.tail_cluster, e.head_cluster):
            if cid and cid not in stand_ins:
                sid = cid if cid.startswith("any_") else f"any_{cid}"
                while sid in ids.values() or sid in stand_ins.values():
                    sid += "_"
                stand_ins[cid] = sid
                label = f"any state of: {clusters[cid].label}" if cid in clusters else cid
                out.append(f'    state "{_text(label)}" as {sid}')
    if stand_ins:
        out.append(f"    classDef cover {_css(theme.S_COVER)}")
        members["cover"] = list(stand_ins.values())
    for e in diagram.edges:
        label = " · ".join([e.label, *e.detail]) if e.label else ""
        tail = stand_ins[e.tail_cluster] if e.tail_cluster else ids[e.source]
        head = stand_ins[e.head_cluster] if e.head_cluster else ids[e.dest]
        arrow = f"    {tail} --> {head}"
        out.append(f"{arrow} : {_text(label)}" if label else arrow)
    out += [f"    {ids[n.id]} --> [*]" for n in diagram.nodes if n.final]
    out += [f"    class {','.join(names)} {cls}" for cls, names in members.items()]
    return "\n".join(out) + "\n"


def _ids(diagram: Diagram) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    for n in diagram.nodes:
        if n.kind == "start":
            ids[n.id] = "[*]"
            continue
        base = (
            n.id if _ID.match(n.id) and n.id not in _RESERVED else "s_" + re.sub(r"\W", "_", n.id)
        )
        candidate, k = base, 2
        while candidate in used:
            candidate, k = f"{base}_{k}", k + 1
        used.add(candidate)
        ids[n.id] = candidate
    return ids


def _description(n: Node) -> str:
    return "<br/>".join(_text(line).replace('"', "'") for line in (n.label, *n.detail))


def _text(s: str) -> str:
    """Safe inside a Mermaid label: one line, no ``;`` (a statement separator)."""
    return _one_line(s).replace(";", ",")


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _css(s: Style) -> str:
    parts = []
    if s.fill:
        parts.append(f"fill:{s.fill}")
    if s.color:
        parts.append(f"stroke:{s.color}")
    if s.fontcolor:
        parts.append(f"color:{s.fontcolor}")
    if s.width:
        parts.append(f"stroke-width:{s.width:g}px")
    if s.line == "dashed":
        parts.append("stroke-dasharray:5 5")
    elif s.line == "dotted":
        parts.append("stroke-dasharray:2 2")
    return ",".join(parts) or "fill:#ffffff"
