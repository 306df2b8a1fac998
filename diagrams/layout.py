"""How the DOT renderer lays out a diagram's edges: reading order and bundles.

Two decisions keep a dense machine readable with ``dot``:

* **Reading order.** The order of ``Diagram.nodes`` (the definition's state order) is the order
  to read the process in. An edge pointing back in it (a return, a reopen) is emitted reversed
  with ``dir=back``, so it still points the right way but never pulls its destination to the
  left of its source: ranks follow the process, not whichever cycle ``dot`` happens to break.
* **Bundles.** One trigger entering one state from :data:`MIN_BUNDLE` or more states (``cancel``
  from every open state) is drawn through a small junction: a short unlabelled *member* segment
  per source, then one *shared* segment with the trigger's label into the destination. The
  same for one trigger leaving one state for several (``@return`` edges). The drawing carries
  one label instead of nine and far fewer crossings; every model edge still has exactly one
  segment of its own (its member segment) with its id, style and tooltip.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from .model import Diagram, Edge

__all__ = ["MIN_BUNDLE", "Junction", "Segment", "plan"]

MIN_BUNDLE = 3


@dataclass(frozen=True, slots=True)
class Junction:
    id: str
    trigger: str
    hub: str
    """The state all members enter (``in``) or leave (``out``)."""
    direction: Literal["in", "out"]
    members: tuple[Edge, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    tail: str
    head: str
    """Drawn from ``tail`` to ``head`` (the meaning, whatever ``reverse`` says)."""
    kind: Literal["edge", "member", "shared"]
    edge: Edge | None
    """The model edge a plain or member segment draws; None for a shared one."""
    junction: Junction | None
    arrow: bool
    reverse: bool
    """Emit as ``head -> tail [dir=back]`` so the segment follows the reading order."""


def plan(diagram: Diagram) -> tuple[list[Junction], list[Segment]]:
    pos: dict[str, float] = {n.id: float(i) for i, n in enumerate(diagram.nodes)}
    fan_out: dict[tuple[str, str], list[Edge]] = defaultdict(list)
    fan_in: dict[tuple[str, str], list[Edge]] = defaultdict(list)
    for e in diagram.edges:
        if e.trigger is not None:
            fan_out[(e.trigger, e.source)].append(e)
            fan_in[(e.trigger, e.dest)].append(e)

    bundled: dict[tuple[str | None, str, str], Junction] = {}
    junctions: list[Junction] = []
    for (trigger, hub), members in fan_out.items():
        if len({e.dest for e in members}) >= MIN_BUNDLE:
            j = Junction(f"junction.{trigger}.from.{hub}", trigger, hub, "out", tuple(members))
            junctions.append(j)
            bundled.update((e.key, j) for e in members)
    for (trigger, hub), members in fan_in.items():
        members = [e for e in members if e.key not in bundled]
        if len({e.source for e in members}) >= MIN_BUNDLE:
            j = Junction(f"junction.{trigger}.to.{hub}", trigger, hub, "in", tuple(members))
            junctions.append(j)
            bundled.update((e.key, j) for e in members)

    for j in junctions:  # a junction sits next to its hub, on the side its members are
        others = [pos[e.dest if j.direction == "out" else e.source] for e in j.members]
        before = sum(1 for p in others if p < pos[j.hub])
        pos[j.id] = pos[j.hub] + (-0.5 if before * 2 > len(others) else 0.5)

    def seg(
        tail: str,
        head: str,
        kind: Literal["edge", "member", "shared"],
        edge: Edge | None,
        j: Junction | None,
        arrow: bool,
    ) -> Segment:
        return Segment(tail, head, kind, edge, j, arrow, pos[head] < pos[tail])

    segments: list[Segment] = []
    shared_done: set[str] = set()
    for e in diagram.edges:
        found = bundled.get(e.key)
        if found is None:
            segments.append(seg(e.source, e.dest, "edge", e, None, True))
            continue
        j = found
        if j.id not in shared_done:
            shared_done.add(j.id)
            if j.direction == "out":
                segments.append(seg(j.hub, j.id, "shared", None, j, False))
            else:
                segments.append(seg(j.id, j.hub, "shared", None, j, True))
        if j.direction == "out":
            segments.append(seg(j.id, e.dest, "member", e, j, True))
        else:
            segments.append(seg(e.source, j.id, "member", e, j, False))
    return junctions, segments
