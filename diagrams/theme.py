"""Colours and styles shared by the extractors: one place to change how diagrams look."""

from __future__ import annotations

from .model import Style

__all__ = [
    "GROUPS",
    "LOAD_PALETTE",
    "S_ALLOWED",
    "S_BLOCKED",
    "S_BREACHED",
    "S_COVER",
    "S_CURRENT",
    "S_EDGE",
    "S_FADED_EDGE",
    "S_FADED_NODE",
    "S_LIVE_EDGE",
    "S_NODE",
    "S_PATH",
    "S_RETURN",
    "S_UNAVAILABLE",
    "S_VISITED",
]

GROUPS: dict[str, tuple[str, Style]] = {
    "intake": ("Intake", Style(fill="#f5f5f5", color="#9e9e9e", fontcolor="#616161")),
    "level1": ("Level 1", Style(fill="#eef6fd", color="#90caf9", fontcolor="#1565c0")),
    "level2": ("Level 2", Style(fill="#eef8ef", color="#a5d6a7", fontcolor="#2e7d32")),
    "level3": ("Level 3", Style(fill="#f7eef8", color="#ce93d8", fontcolor="#6a1b9a")),
    "administrative": (
        "Administrative",
        Style(fill="#fffaeb", color="#ffcc80", fontcolor="#e65100"),
    ),
    "waiting": ("Waiting", Style(fill="#fdf0f4", color="#f48fb1", fontcolor="#ad1457")),
    "done": ("Done", Style(fill="#f1f3f4", color="#b0bec5", fontcolor="#37474f")),
}
"""Group name -> (cluster title, cluster style), in drawing order."""

S_COVER = Style(fill="#ffffff", color="#90a4ae", fontcolor="#455a64", line="dashed")
"""A cluster drawn around several groups (the source of a trigger that leaves all of them)."""

S_NODE = Style(fill="#ffffff", color="#455a64", fontcolor="#212121", width=1.2, line="solid")
S_EDGE = Style(color="#546e7a", fontcolor="#37474f", width=1.0, line="solid")
S_RETURN = Style(color="#00838f", fontcolor="#00838f")
"""``@return`` edges: back to the state the ticket came from."""

# one ticket
S_FADED_NODE = Style(fill="#ffffff", color="#b0bec5", fontcolor="#78909c")
S_VISITED = Style(fill="#bbdefb", color="#1565c0", fontcolor="#0d47a1", width=1.5)
S_CURRENT = Style(fill="#ffd54f", color="#e65100", fontcolor="#000000", width=3.0)
S_FADED_EDGE = Style(color="#cfd8dc", fontcolor="#b0bec5", width=1.0)
S_PATH = Style(color="#1565c0", fontcolor="#0d47a1", width=2.5, line="solid")
S_ALLOWED = Style(color="#2e7d32", fontcolor="#1b5e20", width=2.5, line="solid")
S_BLOCKED = Style(color="#c62828", fontcolor="#b71c1c", width=1.5, line="dashed")
S_UNAVAILABLE = Style(color="#b0bec5", fontcolor="#90a4ae", width=1.0, line="dotted")

# live view
LOAD_PALETTE = ("#ffffff", "#fff3e0", "#ffe0b2", "#ffcc80", "#ffa726", "#f57c00")
"""Fill by load: index 0 for an empty state, 1..5 scaled to the busiest state."""
S_BREACHED = Style(color="#c62828", width=3.0)
S_LIVE_EDGE = Style(color="#90a4ae", fontcolor="#78909c")
