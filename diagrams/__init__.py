"""Diagrams of workflow definitions and tickets: extract -> plain dataclasses -> renderers."""
