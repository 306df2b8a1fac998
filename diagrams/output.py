"""Diagram -> bytes in a format: DOT and Mermaid as text, SVG and PNG through Graphviz's ``dot``.

Without the ``dot`` program DOT and Mermaid still work; SVG and PNG raise
:class:`GraphvizMissing` (the API answers 503 with its ``detail``). The static workflow diagram
is cached per (definition hash, format, show): ``dot`` runs once per key per process.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Iterable

from workflow import Definition

from .dot import to_dot
from .extract import parse_show, workflow_diagram
from .mermaid import to_mermaid
from .model import Diagram

__all__ = [
    "CACHE_SIZE",
    "FORMATS",
    "MEDIA_TYPES",
    "GraphvizMissing",
    "RenderError",
    "clear_cache",
    "render",
    "render_dot",
    "workflow_image",
]

FORMATS = ("svg", "png", "dot", "mmd")
MEDIA_TYPES = {
    "svg": "image/svg+xml",
    "png": "image/png",
    "dot": "text/vnd.graphviz; charset=utf-8",
    "mmd": "text/plain; charset=utf-8",  # Mermaid has no registered media type
}
DOT_TIMEOUT_S = 30
CACHE_SIZE = 256


class GraphvizMissing(RuntimeError):
    """SVG / PNG were asked for, but Graphviz's ``dot`` program is not installed."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.detail = (
            f"rendering {fmt.upper()} needs Graphviz's `dot` program, which is not installed "
            "on this server (or not on its PATH): install Graphviz (Debian/Ubuntu: "
            "`apt-get install graphviz`, macOS: `brew install graphviz`), or ask for the "
            "`dot` or `mmd` format, which need no Graphviz"
        )
        super().__init__(self.detail)


class RenderError(RuntimeError):
    """``dot`` ran but failed (or timed out): a bug in the DOT we produced."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def render(diagram: Diagram, fmt: str) -> bytes:
    """``diagram`` in ``fmt`` (one of :data:`FORMATS`); ValueError for an unknown format."""
    if fmt == "dot":
        return to_dot(diagram).encode()
    if fmt == "mmd":
        return to_mermaid(diagram).encode()
    if fmt in ("svg", "png"):
        return render_dot(to_dot(diagram), fmt)
    raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def render_dot(source: str, fmt: str) -> bytes:
    """Run ``dot -T<fmt>`` on ``source``."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(fmt)
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"],
            input=source.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except OSError as exc:  # vanished or not executable since `which` saw it
        raise GraphvizMissing(fmt) from exc
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"dot -T{fmt} took longer than {DOT_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise RenderError(f"dot -T{fmt} failed ({done.returncode}): {err}")
    return done.stdout


_cache: OrderedDict[tuple[str, str, frozenset[str]], bytes] = OrderedDict()
_lock = threading.Lock()


def workflow_image(
    definition: Definition, fmt: str, show: str | Iterable[str] | None = None
) -> bytes:
    """The whole-workflow diagram of ``definition`` in ``fmt``, cached per
    (definition hash, format, show) - the hash covers everything drawn, so a cached image is
    never stale. Keeps the :data:`CACHE_SIZE` most recently used images."""
    key = (definition.hash, fmt, parse_show(show))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    data = render(workflow_diagram(definition, key[2]), fmt)
    with _lock:
        _cache[key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def clear_cache() -> None:
    with _lock:
        _cache.clear()
