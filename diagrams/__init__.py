"""Diagrams of workflow definitions and tickets: extract -> plain dataclasses -> renderers.

    from diagrams import workflow_diagram, ticket_diagram, live_diagram, render
    svg = render(workflow_diagram(definition, show={"guards"}), "svg")
    svg = workflow_image(definition, "svg", "guards,roles")   # cached per definition version

Renderers: DOT (``to_dot``, the ``graphviz`` package), Mermaid ``stateDiagram-v2``
(``to_mermaid``), SVG / PNG through Graphviz's ``dot`` (``render``; :class:`GraphvizMissing`
without it). The domain (``workflow``) never imports this package.
"""

from .diff import diff_diagram
from .dot import to_dot
from .extract import (
    focus_diagram,
    live_diagram,
    parse_show,
    ticket_diagram,
    workflow_diagram,
)
from .mermaid import to_mermaid
from .model import Diagram
from .output import (
    FORMATS,
    MEDIA_TYPES,
    GraphvizMissing,
    RenderError,
    render,
    workflow_image,
)

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "Diagram",
    "GraphvizMissing",
    "RenderError",
    "diff_diagram",
    "focus_diagram",
    "live_diagram",
    "parse_show",
    "render",
    "ticket_diagram",
    "to_dot",
    "to_mermaid",
    "workflow_diagram",
    "workflow_image",
]
