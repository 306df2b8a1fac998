"""How many pairs of drawn edges cross, measured on the layout Graphviz itself returns.

``dot -Tjson`` gives every edge's spline as cubic Bézier control points (``_draw_`` op ``b``);
each curve is flattened into a polyline and every pair of curves is tested segment by segment.
A pair counts once however often it crosses; touching where both curves end (two edges meeting
at one node or junction) is not a crossing.
"""

from __future__ import annotations

import json
from itertools import combinations, pairwise

from .output import render_dot

__all__ = ["count_crossings", "crossings_of_layout"]

Point = tuple[float, float]

_STEPS = 12
"""Polyline segments per cubic Bézier piece."""
_END_TOLERANCE = 6.0
"""Points: an intersection this close to an end of both curves is where they meet, not a cross."""


def count_crossings(dot_source: str) -> int:
    """Pairs of edges that cross in ``dot``'s layout of ``dot_source`` (needs Graphviz)."""
    return crossings_of_layout(json.loads(render_dot(dot_source, "json")))


def crossings_of_layout(layout: dict[str, object]) -> int:
    curves = [_flatten(c) for c in _curves(layout)]
    curves = [c for c in curves if len(c) >= 2]
    return sum(1 for a, b in combinations(curves, 2) if _cross(a, b))


def _curves(layout: dict[str, object]) -> list[list[Point]]:
    out: list[list[Point]] = []
    edges = layout.get("edges", [])
    assert isinstance(edges, list)
    for e in edges:
        points: list[Point] = []
        for op in e.get("_draw_", []):
            if op.get("op") in ("b", "B"):
                points += [(float(x), float(y)) for x, y in op["points"]]
        if points:
            out.append(points)
    return out


def _flatten(ctrl: list[Point]) -> list[Point]:
    """Cubic Bézier pieces (``p0 c1 c2 p1 c1 c2 p2 …``) -> a polyline."""
    if len(ctrl) < 4:
        return ctrl
    line = [ctrl[0]]
    for i in range(0, len(ctrl) - 3, 3):
        p0, p1, p2, p3 = ctrl[i : i + 4]
        for k in range(1, _STEPS + 1):
            t = k / _STEPS
            u = 1 - t
            line.append(
                (
                    u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0],
                    u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1],
                )
            )
    return line


def _cross(a: list[Point], b: list[Point]) -> bool:
    if not _boxes_meet(a, b):
        return False
    ends = (a[0], a[-1], b[0], b[-1])
    for a0, a1 in pairwise(a):
        for b0, b1 in pairwise(b):
            hit = _intersection(a0, a1, b0, b1)
            if hit is None:
                continue
            near_a = min(_dist(hit, p) for p in ends[:2]) < _END_TOLERANCE
            near_b = min(_dist(hit, p) for p in ends[2:]) < _END_TOLERANCE
            if not (near_a and near_b):
                return True
    return False


def _boxes_meet(a: list[Point], b: list[Point]) -> bool:
    ax = [p[0] for p in a]
    ay = [p[1] for p in a]
    bx = [p[0] for p in b]
    by = [p[1] for p in b]
    return not (max(ax) < min(bx) or max(bx) < min(ax) or max(ay) < min(by) or max(by) < min(ay))


def _intersection(p: Point, p2: Point, q: Point, q2: Point) -> Point | None:
    rx, ry = p2[0] - p[0], p2[1] - p[1]
    sx, sy = q2[0] - q[0], q2[1] - q[1]
    denom = rx * sy - ry * sx
    if abs(denom) < 1e-12:
        return None  # parallel (collinear overlaps are edges running together, not crossing)
    qpx, qpy = q[0] - p[0], q[1] - p[1]
    t = (qpx * sy - qpy * sx) / denom
    u = (qpx * ry - qpy * rx) / denom
    if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0:
        return (p[0] + t * rx, p[1] + t * ry)
    return None


def _dist(a: Point, b: Point) -> float:
    return float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5)
