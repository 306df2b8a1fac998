"""The intermediate description of a diagram: plain, frozen dataclasses and nothing else.

Extractors (:mod:`diagrams.extract`) build a :class:`Diagram` from a definition (plus a ticket's
history or live counts); renderers (:mod:`diagrams.dot`, :mod:`diagrams.mermaid`) turn it into
text. Neither side knows the other: styles are described here in renderer-neutral terms, and
``classes`` carry the meaning of a node or edge (``current``, ``path``, ``blocked``...) so a
renderer or a web page can hook onto it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

__all__ = ["START", "Cluster", "Diagram", "Edge", "LegendItem", "Node", "Style"]

START = "__start__"
"""Id of the start marker node (its one edge points at the initial state)."""

Line = Literal["solid", "dashed", "dotted"]


@dataclass(frozen=True, slots=True)
class Style:
    """How a node, edge or cluster looks; ``None`` means the renderer's default."""

    fill: str | None = None
    """Background colour (``#rrggbb``)."""
    color: str | None = None
    """Border or line colour."""
    fontcolor: str | None = None
    width: float | None = None
    """Border or line width in points."""
    line: Line | None = None

    def over(self, base: Style) -> Style:
        """This style laid over ``base``: every field set here wins."""
        return replace(
            base,
            **{
                f.name: getattr(self, f.name)
                for f in fields(self)
                if getattr(self, f.name) is not None
            },
        )


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    """The title, first line."""
    kind: Literal["state", "start"] = "state"
    final: bool = False
    cluster: str | None = None
    detail: tuple[str, ...] = ()
    """Further lines under the title (time spent, counts...)."""
    style: Style = Style()
    tooltip: str = ""
    classes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    dest: str
    trigger: str | None
    """``None`` only for the start marker's edge."""
    detail: tuple[str, ...] = ()
    """Further label lines (guards, roles)."""
    steps: tuple[int, ...] = ()
    """For a ticket: the step numbers (1 = first transition) at which it took this edge."""
    style: Style = Style()
    tooltip: str = ""
    classes: tuple[str, ...] = ()
    tail_cluster: str | None = None
    """Drawn from this cluster's border (a transition leaving every state of it)."""
    head_cluster: str | None = None
    """Drawn to this cluster's border (an ``@return`` back to any state of it)."""
    covers: tuple[str, ...] = ()
    """For a cluster edge: the states at its cluster end it stands for."""

    @property
    def key(self) -> tuple[str | None, str, str]:
        return (self.trigger, self.source, self.dest)

    @property
    def label(self) -> str:
        """The first label line: step numbers (if any), then the trigger."""
        steps = " ".join(f"#{n}" for n in self.steps)
        return " ".join(part for part in (steps, self.trigger or "") if part)


@dataclass(frozen=True, slots=True)
class Cluster:
    id: str
    label: str
    style: Style = Style()
    parent: str | None = None
    """The enclosing cluster (clusters nest; ``None`` at the top)."""
    tooltip: str = ""


@dataclass(frozen=True, slots=True)
class LegendItem:
    label: str
    kind: Literal["node", "edge", "start", "final", "junction"]
    style: Style = Style()


@dataclass(frozen=True, slots=True)
class Diagram:
    name: str
    """A short identifier (used as the DOT graph name)."""
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    clusters: tuple[Cluster, ...] = ()
    legend: tuple[LegendItem, ...] = ()
    direction: Literal["LR", "TB"] = "LR"

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)
