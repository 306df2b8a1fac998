"""The definitions an engine knows: the current version of each name, and every version ever
stored (its YAML kept in ``definition_version``), so old tickets keep running on theirs.

A definition whose calendar takes holidays from the `holidays` package is stored as the JSON
of its parsed spec instead, which carries the resolved dates (``country_holidays``): replaying
a stored version never asks the installed package again, so upgrading it changes no stored
due instant and no ``tierflow check`` result."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from .db import Database
from .definition import Definition, parse_text
from .errors import NotFound
from .machine import machine_for
from .models import DefinitionVersion

__all__ = ["DefinitionRegistry"]

DV = DefinitionVersion.__table__  # type: ignore[attr-defined]


class DefinitionRegistry:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._by_hash: dict[str, Definition] = {}
        self._latest: dict[str, Definition] = {}

    def register(self, definition: Definition) -> None:
        """Make ``definition`` the current version of its name (stored for old tickets' sake)."""
        with self.db.write() as conn:
            exists = conn.execute(sa.select(DV.c.hash).where(DV.c.hash == definition.hash)).first()
            if exists is None:
                conn.execute(
                    sa.insert(DV),
                    {
                        "hash": definition.hash,
                        "name": definition.name,
                        "version": definition.version,
                        "source": _stored_source(definition),
                        "created_at": self.clock(),
                    },
                )
        self._by_hash[definition.hash] = definition
        self._latest[definition.name] = definition
        machine_for(definition)

    def current(self) -> list[Definition]:
        return list(self._latest.values())

    def loaded(self) -> list[Definition]:
        """Every version loaded in this process (current ones and old ones tickets asked for)."""
        return list(self._by_hash.values())

    def get(self, name: str, version: str | None = None) -> Definition:
        """The current definition of ``name``, or the one with that human version or hash."""
        if version is None:
            d = self._latest.get(name)
            if d is None:
                raise NotFound("workflow", name)
            return d
        for d in self._by_hash.values():
            if d.name == name and version in (d.version, d.hash):
                return d
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(DV.c.hash)
                .where(DV.c.name == name, sa.or_(DV.c.version == version, DV.c.hash == version))
                .order_by(DV.c.created_at.desc())
            ).first()
        if row is None:
            raise NotFound("workflow version", f"{name}@{version}")
        return self.by_hash(row.hash)

    def versions(self, name: str) -> list[tuple[str, str, datetime]]:
        """(human version, hash, first seen) of every stored version of ``name``, newest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(DV.c.version, DV.c.hash, DV.c.created_at)
                .where(DV.c.name == name)
                .order_by(DV.c.created_at.desc())
            ).all()
        return [(r.version, r.hash, r.created_at) for r in rows]

    def by_hash(self, h: str) -> Definition:
        d = self._by_hash.get(h)
        if d is None:
            with self.db.read() as conn:
                row = conn.execute(sa.select(DV.c.source).where(DV.c.hash == h)).first()
            if row is None:
                raise NotFound("definition version", h)
            d = parse_text(row.source, source=f"stored definition {h}")
            self._by_hash[h] = d
        return d


def _stored_source(definition: Definition) -> str:
    """What ``definition_version.source`` keeps: the YAML as written, unless the parsed spec
    holds data resolved at load time (country holidays), then that spec as JSON."""
    if definition.source_text and definition.spec.calendar.country_holidays is None:
        return definition.source_text
    return json.dumps(definition.to_dict())
