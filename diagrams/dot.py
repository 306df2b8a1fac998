"""Diagram -> Graphviz DOT source (with the ``graphviz`` package; no ``dot`` binary needed).

Layout choices for reading at a glance: left to right, one filled cluster per group; edges in
the process's reading order and one trigger shared by many states bundled through a junction
(see :mod:`diagrams.layout`), bundle members thin and pale so the main flow stands out; labels
as real edge labels (``dot`` places them as virtual nodes, so they do not cross where it can
avoid it); HTML-like node labels (bold title, small id and details); the title and a small
legend in the graph label above the drawing.

Every node and edge gets an SVG ``id`` and ``class`` (the model's classes) for a web page to hook
onto: ``state.NAME``, ``start``, ``edge.TRIGGER.SOURCE.DEST`` (exactly one per model edge: the
whole edge, or its member segment of a bundle), ``bundle.TRIGGER.in|out.HUB`` and
``junction.TRIGGER.to|from.HUB``. ``dir=back`` marks (only) an edge written reversed.
"""

from __future__ import annotations

from dataclasses import replace
from html import escape

import graphviz

from . import theme
from .layout import Junction, Segment, plan
from .model import Cluster, Diagram, Edge, LegendItem, Node, Style

__all__ = ["edge_id", "node_id", "to_dot"]

FONT = "Helvetica"


def node_id(node: Node) -> str:
    """The SVG id of a node."""
    return "start" if node.kind == "start" else f"state.{node.id}"


def edge_id(edge: Edge) -> str:
    """The SVG id of an edge."""
    if edge.trigger is None:
        return "edge.start"
    source = f"group-{edge.tail_cluster}" if edge.tail_cluster else edge.source
    dest = f"group-{edge.head_cluster}" if edge.head_cluster else edge.dest
    return f"edge.{edge.trigger}.{source}.{dest}"


def to_dot(diagram: Diagram) -> str:
    junctions, segments = plan(diagram)
    g = graphviz.Digraph(
        diagram.name,
        graph_attr={
            "rankdir": diagram.direction,
            "newrank": "true",
            "compound": "true",
            "splines": "true",
            "nodesep": "0.35",
            "ranksep": "0.7",
            "pad": "0.3",
            "bgcolor": "white",
            "fontname": FONT,
            "labelloc": "t",
            "labeljust": "l",
            "label": _legend_label(diagram, bool(junctions)),
            "tooltip": diagram.title,
        },
        node_attr={"fontname": FONT, "fontsize": "11", "margin": "0.15,0.06"},
        edge_attr={"fontname": FONT, "fontsize": "9", "arrowsize": "0.7"},
    )
    by_cluster: dict[str | None, list[Node]] = {}
    for n in diagram.nodes:
        by_cluster.setdefault(n.cluster, []).append(n)
    for n in by_cluster.pop(None, []):
        _node(g, n)
    children: dict[str | None, list[Cluster]] = {}
    for c in diagram.clusters:
        children.setdefault(c.parent, []).append(c)

    def emit(parent: graphviz.Digraph, c: Cluster) -> None:
        members = by_cluster.pop(c.id, [])
        inner = children.get(c.id, [])
        if not members and not inner:
            return
        with parent.subgraph(name=f"cluster_{c.id}") as sub:
            s = c.style
            sub.attr(
                id=f"cluster.{c.id}",
                label=f"<<B>{escape(c.label)}</B>>",
                style=",".join(["rounded", "filled", *_line(s)]),
                fillcolor=s.fill or "#fafafa",
                color=s.color or "#bdbdbd",
                fontcolor=s.fontcolor or "#424242",
                fontsize="12",
                labeljust="l",
                margin="12",
                tooltip=c.tooltip or c.label,
            )
            for child in inner:
                emit(sub, child)
            for n in members:
                _node(sub, n)

    for c in children.get(None, []):
        emit(g, c)
    for leftover in by_cluster.values():  # a cluster the diagram does not declare
        for n in leftover:
            _node(g, n)
    for j in junctions:
        _junction(g, j)
    for seg in segments:
        _segment(g, seg)
    return str(g.source)


def _node(g: graphviz.Digraph, n: Node) -> None:
    classes = " ".join(n.classes)
    if n.kind == "start":
        g.node(
            n.id,
            label="",
            shape="point",
            width="0.2",
            style="filled",
            fillcolor="#263238",
            color="#263238",
            id=node_id(n),
            tooltip=n.tooltip or "start",
            **({"class": classes} if classes else {}),
        )
        return
    s = n.style.over(theme.S_NODE)
    lines = [f"<B>{escape(n.label)}</B>"]
    if n.label != n.id:
        lines.append(f'<FONT POINT-SIZE="8" COLOR="#78909c">{escape(n.id)}</FONT>')
    lines += [f'<FONT POINT-SIZE="10">{escape(d)}</FONT>' for d in n.detail]
    attrs = {
        "label": "<" + "<BR/>".join(lines) + ">",
        "shape": "box",
        "style": ",".join(["rounded", "filled", *_line(s)]),
        "fillcolor": s.fill or "white",
        "color": s.color or "black",
        "fontcolor": s.fontcolor or "black",
        "penwidth": _num(s.width or 1.0),
        "id": node_id(n),
        "tooltip": n.tooltip or n.label,
    }
    if n.final:
        attrs["peripheries"] = "2"
    if classes:
        attrs["class"] = classes
    g.node(n.id, **attrs)


def _segment(g: graphviz.Digraph, seg: Segment) -> None:
    j = seg.junction
    if seg.edge is not None:
        e = seg.edge
        common = _common_detail(j) if j else ()
        detail = tuple(d for d in e.detail if d not in common)
        steps = " ".join(f"#{n}" for n in e.steps)
        label_lines = [e.label] if seg.kind == "edge" else ([steps] if steps else [])
        style = e.style
        if seg.kind == "member" and not set(e.classes) & set(_SALIENCE):
            style = _faint(style.over(theme.S_EDGE))
        attrs = _edge_attrs(style, label_lines, detail, e.tooltip, e.classes)
        attrs["id"] = edge_id(e)
    else:
        assert j is not None
        lead = _salient(j.members)
        if lead.classes and lead.classes[-1] in ("allowed", "blocked"):
            tip = lead.tooltip
        else:
            ends = [e.source if j.direction == "in" else e.dest for e in j.members]
            tip = (
                f"{j.trigger}: {', '.join(ends)} → {j.hub}"
                if j.direction == "in"
                else f"{j.trigger}: {j.hub} → {', '.join(ends)}"
            )
        classes = ("bundle", *[c for c in lead.classes if c != "transition"])
        attrs = _edge_attrs(lead.style, [j.trigger], _common_detail(j), tip, classes)
        attrs["id"] = f"bundle.{j.trigger}.{j.direction}.{j.hub}"
    attrs["weight"] = str(1 if seg.reverse and seg.kind == "edge" else _WEIGHTS[seg.kind])
    if seg.edge is not None and (seg.edge.tail_cluster or seg.edge.head_cluster):
        e = seg.edge
        attrs["weight"] = "0"
        written = (
            (e.head_cluster, e.tail_cluster) if seg.reverse else (e.tail_cluster, e.head_cluster)
        )
        for key, cluster in zip(("ltail", "lhead"), written, strict=True):
            if cluster:
                attrs[key] = f"cluster_{cluster}"
    tail, head = (seg.head, seg.tail) if seg.reverse else (seg.tail, seg.head)
    if seg.reverse:  # dir=back always and only means "written reversed"
        attrs["dir"] = "back"
    if not seg.arrow:
        attrs["arrowtail" if seg.reverse else "arrowhead"] = "none"
    g.edge(tail, head, **attrs)


def _edge_attrs(
    style: Style,
    label_lines: list[str],
    detail: tuple[str, ...],
    tooltip: str,
    classes: tuple[str, ...],
) -> dict[str, str]:
    s = style.over(theme.S_EDGE)
    attrs = {
        "color": s.color or "black",
        "fontcolor": s.fontcolor or "black",
        "penwidth": _num(s.width or 1.0),
    }
    if s.line and s.line != "solid":
        attrs["style"] = s.line
    lines = [escape(x) for x in label_lines if x]
    lines += [f'<FONT POINT-SIZE="8">{escape(d)}</FONT>' for d in detail]
    if lines:
        attrs["label"] = "<" + "<BR/>".join(lines) + ">"
    if tooltip:
        attrs["tooltip"] = attrs["labeltooltip"] = tooltip
    if classes:
        attrs["class"] = " ".join(classes)
    return attrs


def _junction(g: graphviz.Digraph, j: Junction) -> None:
    s = _salient(j.members).style.over(theme.S_EDGE)
    g.node(
        j.id,
        label="",
        shape="point",
        width="0.07",
        color=s.color or "black",
        fillcolor=s.color or "black",
        id=j.id,
        tooltip=j.trigger,
        **{"class": "junction"},
    )


_SALIENCE = ("allowed", "blocked", "path")
_WEIGHTS = {"edge": 4, "shared": 2, "member": 0}
"""Forward state-to-state edges pull hardest, so the main flow is drawn short and straight;
bundle members (long by nature) do not pull at all."""


def _salient(edges: tuple[Edge, ...]) -> Edge:
    """The member whose look a bundle's shared segment takes: allowed now, blocked now, on the
    ticket's path, else the first."""
    for cls in _SALIENCE:
        for e in edges:
            if cls in e.classes:
                return e
    return edges[0]


def _faint(s: Style) -> Style:
    """A bundle member's look: thinner and paler than the shared segment it joins."""
    return replace(s, color=_pale(s.color or "#000000", 0.45), width=(s.width or 1.0) * 0.7)


def _pale(color: str, amount: float) -> str:
    """``#rrggbb`` moved ``amount`` of the way to white."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def _common_detail(j: Junction) -> tuple[str, ...]:
    first = j.members[0].detail
    return tuple(d for d in first if all(d in e.detail for e in j.members[1:]))


def _line(s: Style) -> list[str]:
    return [s.line] if s.line and s.line != "solid" else []


def _num(x: float) -> str:
    return f"{x:g}"


# --- title and legend ------------------------------------------------------------------------
def _legend_label(diagram: Diagram, junctions: bool) -> str:
    items = list(diagram.legend)
    if junctions:
        items.append(LegendItem("lines joining: one trigger, several states", "junction"))
    cells = "".join(_legend_cells(item) for item in items)
    span = max(1, 2 * len(items))
    rows = [
        f'<TR><TD ALIGN="LEFT" COLSPAN="{span}"><FONT POINT-SIZE="15">'
        f"<B>{escape(diagram.title)}</B></FONT></TD></TR>"
    ]
    if cells:
        rows.append(f"<TR>{cells}</TR>")
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="4" CELLPADDING="2">'
        + "".join(rows)
        + "</TABLE>>"
    )


def _legend_cells(item: LegendItem) -> str:
    text = f'<FONT POINT-SIZE="9">{escape(item.label)}</FONT>'
    s = item.style
    if item.kind == "start":
        return f'<TD><FONT COLOR="#263238">●</FONT></TD><TD ALIGN="LEFT">{text}</TD>'
    if item.kind == "junction":
        return f'<TD><FONT POINT-SIZE="7" COLOR="#546e7a">●</FONT></TD><TD ALIGN="LEFT">{text}</TD>'
    if item.kind == "edge":
        dash = f' STYLE="{s.line}"' if s.line in ("dashed", "dotted") else ""
        width = max(1, round(s.width or 1.0))
        line = (
            f'<TD WIDTH="26" HEIGHT="6" FIXEDSIZE="TRUE" SIDES="B" BORDER="{width}" '
            f'COLOR="{s.color or "#546e7a"}"{dash}></TD>'
        )
        return f'{line}<TD ALIGN="LEFT">{text}</TD>'
    fill = s.fill or "white"
    color = s.color or "#455a64"
    border = max(1, round(s.width or 1.0))
    if item.kind == "final":
        box = (
            f'<TABLE BORDER="1" CELLBORDER="1" CELLSPACING="2" STYLE="ROUNDED" COLOR="{color}">'
            f'<TR><TD STYLE="ROUNDED" BGCOLOR="{fill}" WIDTH="18" HEIGHT="10"> </TD></TR></TABLE>'
        )
        return f'<TD>{box}</TD><TD ALIGN="LEFT">{text}</TD>'
    swatch = (
        f'<TD STYLE="ROUNDED" BORDER="{border}" BGCOLOR="{fill}" COLOR="{color}" '
        f'WIDTH="22" HEIGHT="14" FIXEDSIZE="TRUE"> </TD>'
    )
    return f'{swatch}<TD ALIGN="LEFT">{text}</TD>'
