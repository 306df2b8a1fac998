"""YAML text -> data, with where each node stands in the text and the keys written twice.

PyYAML's composer gives every node its ``start_mark`` (line and column); the data is then built
from that same node tree by PyYAML's safe constructor, so the marks and the data cannot
disagree. A mapping that names a key twice is reported (YAML would silently keep the last).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import DefinitionError, Problem

__all__ = ["Loc", "SourceMap", "format_loc", "load_yaml"]

Loc = tuple[str | int, ...]
"""A path into the data: mapping keys and sequence indexes."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 100_000
"""More nodes than this (aliases counted each time they are used) is refused: a definition is
a few thousand, and aliases of aliases would otherwise grow without bound."""


class _TooBig(Exception):
    pass


@dataclass
class SourceMap:
    """Where the nodes of one YAML text are: 1-based (line, column) by path."""

    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    collections: set[Loc] = field(default_factory=set)

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int, int] | None:
        """The node at ``loc``, or its nearest ancestor written in the text. A mapping entry
        whose value is a collection (or with ``key``) is marked at its key: that is the line
        that names it."""
        for n in range(len(loc), -1, -1):
            prefix = loc[:n]
            if prefix in self.values:
                if prefix in self.keys and (prefix in self.collections or (key and n == len(loc))):
                    return self.keys[prefix]
                return self.values[prefix]
        return None


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_yaml(text: str, source: str = "definition") -> tuple[Any, SourceMap, list[Problem]]:
    """The data of ``text``, where its nodes are, and a problem per duplicated key.
    Text that is not YAML raises :class:`DefinitionError` at the line where parsing failed."""
    loader = _Loader(text)
    marks = SourceMap()
    duplicates: list[Problem] = []
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None, marks, duplicates
            _walk(node, (), marks, duplicates, set())  # drops the second of a duplicated key
            data = loader.construct_document(node)
        except (_TooBig, RecursionError):
            message = (
                f"too large: more than {MAX_NODES} nodes (aliases counted each time) "
                "or nested too deeply"
            )
            raise DefinitionError([Problem("", message, 1, 1)], source) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
            raise DefinitionError(
                [Problem("", f"not valid YAML: {exc}", line, col)], source
            ) from None
    finally:
        loader.dispose()
    return data, marks, duplicates


def _walk(
    node: yaml.Node, loc: Loc, marks: SourceMap, dupes: list[Problem], active: set[int]
) -> None:
    marks.values.setdefault(loc, _mark(node))
    if len(marks.values) > MAX_NODES:
        raise _TooBig
    if id(node) in active:  # an alias of an enclosing node: recursive data
        return
    if isinstance(node, yaml.MappingNode):
        marks.collections.add(loc)
        active.add(id(node))
        seen: dict[tuple[str, str], yaml.Node] = {}
        kept = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kept.append((key_node, value_node))
                continue
            ident = (key_node.tag, key_node.value)
            child = (*loc, _key(key_node))
            first = seen.get(ident)
            if first is not None:
                line, col = _mark(key_node)
                dupes.append(
                    Problem(
                        format_loc(child),
                        f"duplicate key {key_node.value!r} (first at line "
                        f"{first.start_mark.line + 1}); a key is written once per mapping",
                        line,
                        col,
                    )
                )
                continue  # dropped: the data and the marks both keep the first
            kept.append((key_node, value_node))
            seen[ident] = key_node
            marks.keys[child] = _mark(key_node)
            _walk(value_node, child, marks, dupes, active)
        node.value = kept
        active.discard(id(node))
    elif isinstance(node, yaml.SequenceNode):
        marks.collections.add(loc)
        active.add(id(node))
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), marks, dupes, active)
        active.discard(id(node))


def _key(node: yaml.ScalarNode) -> str | int:
    """The key as the constructed data holds it (ints stay ints, the rest strings)."""
    if node.tag == "tag:yaml.org,2002:int":
        try:
            return int(node.value)
        except ValueError:
            return str(node.value)
    return str(node.value)
