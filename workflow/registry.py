"""Published definitions: every version ever published lives in ``definition_version``
(immutable; ``(name, version)`` names exactly one content), the newest publication of a name is
its *latest*, and an account may choose another version for its new tickets
(``account_workflow``). Old tickets keep running on the version they were created on.

A definition whose calendar takes holidays from the `holidays` package is stored as the JSON
of its parsed spec instead of its YAML, which carries the resolved dates (``country_holidays``):
replaying a stored version never asks the installed package again, so upgrading it changes no
stored due instant and no ``tierflow check`` result.

Several processes may serve one database: what another process published or chose is seen here
within :data:`REFRESH_SECONDS` (what this process did, at once).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .calendar import CalendarSpec
from .db import Database
from .definition import Definition, parse_text
from .errors import NotFound, VersionTaken
from .machine import machine_for
from .models import AccountWorkflow, DefinitionVersion

__all__ = ["REFRESH_SECONDS", "DefinitionRegistry", "Published", "StoredVersion"]

DV = DefinitionVersion.__table__  # type: ignore[attr-defined]
AW = AccountWorkflow.__table__  # type: ignore[attr-defined]
REFRESH_SECONDS = 1.0
"""How stale this process's view of publications and account choices may be."""


@dataclass(frozen=True, slots=True)
class Published:
    """What publishing answered: the version, and whether this call stored it (``created``)
    or that very content was published before."""

    name: str
    version: str
    hash: str
    created: bool


@dataclass(frozen=True, slots=True)
class StoredVersion:
    name: str
    version: str
    hash: str
    published_at: datetime
    seq: int


class DefinitionRegistry:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._lock = threading.Lock()
        self._by_hash: dict[str, Definition] = {}
        self._latest: dict[str, str] = {}  # name -> hash of its newest publication
        self._published: list[str] = []  # every published hash, in publication order
        self._seq = 0  # the newest publication seen
        self._checked = float("-inf")  # monotonic time of the last look at the table
        self._choices: dict[tuple[int, str], tuple[str | None, float]] = {}
        self._refresh(force=True)

    # --- publishing ----------------------------------------------------------------------
    def publish(self, definition: Definition) -> Published:
        """Store ``definition`` as a published version (the newest of its name) unless that
        content is published already; another content under its (name, version) is refused
        with :class:`VersionTaken`."""
        d = definition
        with self.db.write() as conn:
            self.db.lock_in_transaction(conn, "tierflow:publish")
            if conn.execute(sa.select(DV.c.hash).where(DV.c.hash == d.hash)).first():
                created = False
            else:
                other = conn.execute(
                    sa.select(DV.c.hash)
                    .where(DV.c.name == d.name, DV.c.version == d.version)
                    .order_by(DV.c.seq.desc())
                ).first()
                if other is not None:
                    raise VersionTaken(d.name, d.version, other.hash)
                seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(DV.c.seq), 0))).scalar()
                conn.execute(
                    sa.insert(DV),
                    {
                        "hash": d.hash,
                        "name": d.name,
                        "version": d.version,
                        "source": _stored_source(d),
                        "created_at": self.clock(),
                        "seq": int(seq or 0) + 1,
                    },
                )
                created = True
        machine_for(d)
        with self._lock:
            self._by_hash.setdefault(d.hash, d)
        if created:
            self._refresh(force=True)
        return Published(d.name, d.version, d.hash, created)

    def check_publishable(self, definition: Definition) -> bool:
        """What publishing would answer, storing nothing: True if it would store it, False if
        that content is published already; :class:`VersionTaken` if its version is taken."""
        d = definition
        with self.db.read() as conn:
            if conn.execute(sa.select(DV.c.hash).where(DV.c.hash == d.hash)).first():
                return False
            other = conn.execute(
                sa.select(DV.c.hash).where(DV.c.name == d.name, DV.c.version == d.version)
            ).first()
        if other is not None:
            raise VersionTaken(d.name, d.version, other.hash)
        return True

    # --- reading -------------------------------------------------------------------------
    def _refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_SECONDS:
            return
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(DV.c.name, DV.c.hash, DV.c.seq)
                .where(DV.c.seq > self._seq)
                .order_by(DV.c.seq)
            ).all()
        with self._lock:
            for r in rows:
                if r.seq > self._seq:
                    self._latest[r.name] = r.hash
                    self._published.append(r.hash)
                    self._seq = r.seq
            self._checked = now

    def current(self) -> list[Definition]:
        """The latest version of every name."""
        self._refresh()
        return [self.by_hash(h) for h in list(self._latest.values())]

    def loaded(self) -> list[Definition]:
        """Every published version, in publication order (parsed once each, on first use)."""
        self._refresh()
        return [self.by_hash(h) for h in list(self._published)]

    def latest(self, name: str) -> Definition:
        self._refresh()
        h = self._latest.get(name)
        if h is None:
            self._refresh(force=True)
            h = self._latest.get(name)
            if h is None:
                raise NotFound("workflow", name)
        return self.by_hash(h)

    def get(self, name: str, version: str | None = None) -> Definition:
        """The latest definition of ``name``, or the one with that human version or hash."""
        if version is None:
            return self.latest(name)
        with self._lock:
            known = [d for d in self._by_hash.values() if d.name == name]
        for d in known:
            if version in (d.version, d.hash):
                return d
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(DV.c.hash)
                .where(DV.c.name == name, sa.or_(DV.c.version == version, DV.c.hash == version))
                .order_by(DV.c.seq.desc())
            ).first()
        if row is None:
            raise NotFound("workflow version", f"{name}@{version}")
        return self.by_hash(row.hash)

    def stored(self, name: str | None = None) -> list[StoredVersion]:
        """Every published version (of ``name``), newest first (an account's calendar variant,
        ``seq`` 0, is no publication)."""
        q = sa.select(DV.c.name, DV.c.version, DV.c.hash, DV.c.created_at, DV.c.seq).where(
            DV.c.seq > 0
        )
        if name is not None:
            q = q.where(DV.c.name == name)
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(DV.c.seq.desc())).all()
        return [StoredVersion(r.name, r.version, r.hash, r.created_at, r.seq) for r in rows]

    def versions(self, name: str) -> list[tuple[str, str, datetime]]:
        """(human version, hash, first published) of every version of ``name``, newest first."""
        return [(v.version, v.hash, v.published_at) for v in self.stored(name)]

    def by_hash(self, h: str) -> Definition:
        d = self._by_hash.get(h)
        if d is None:
            with self.db.read() as conn:
                row = conn.execute(sa.select(DV.c.source).where(DV.c.hash == h)).first()
            if row is None:
                raise NotFound("definition version", h)
            # validated when it was published: parse its shape only
            d = parse_text(row.source, source=f"stored definition {h}", check=False)
            machine_for(d)
            with self._lock:
                d = self._by_hash.setdefault(h, d)
        return d

    def with_calendar(self, d: Definition, calendar: CalendarSpec) -> Definition:
        """``d`` running on ``calendar`` (an account's): a version of its own, stored (never
        the latest of its name, never published), named ``<version>+calendar.<hash>``."""
        if calendar == d.spec.calendar:
            return d
        blob = json.dumps(calendar.model_dump(mode="json"), sort_keys=True)
        tag = hashlib.sha256(blob.encode()).hexdigest()[:8]
        spec = d.spec.model_copy(
            update={"calendar": calendar, "version": f"{d.version}+calendar.{tag}"}
        )
        variant = Definition(spec)
        known = self._by_hash.get(variant.hash)
        if known is not None:
            return known
        with self.db.write() as conn:
            if not conn.execute(sa.select(DV.c.hash).where(DV.c.hash == variant.hash)).first():
                conn.execute(
                    sa.insert(DV),
                    {
                        "hash": variant.hash,
                        "name": variant.name,
                        "version": variant.version,
                        "source": json.dumps(variant.to_dict()),
                        "created_at": self.clock(),
                        "seq": 0,  # not a publication: never the latest, never listed as one
                    },
                )
        machine_for(variant)
        with self._lock:
            return self._by_hash.setdefault(variant.hash, variant)

    # --- the version an account's new tickets get ----------------------------------------
    def for_account(self, account_id: int, name: str) -> Definition:
        """The version of ``name`` the account chose, else the latest."""
        chosen = self.chosen(account_id, name)
        return self.latest(name) if chosen is None else self.by_hash(chosen)

    def chosen(self, account_id: int, name: str) -> str | None:
        """The hash the account chose for ``name``'s new tickets (None: it follows the latest)."""
        key = (account_id, name)
        now = time.monotonic()
        cached = self._choices.get(key)
        if cached is not None and now - cached[1] < REFRESH_SECONDS:
            return cached[0]
        with self.db.read() as conn:
            h = conn.execute(
                sa.select(AW.c.definition_hash).where(
                    AW.c.account_id == account_id, AW.c.workflow == name
                )
            ).scalar()
        self._choices[key] = (h, now)
        return h

    def choose(self, account_id: int, name: str, version: str | None) -> Definition:
        """Make ``version`` (human version or hash) of ``name`` the one the account's new
        tickets get; None: follow the latest again. Returns what new tickets get now."""
        d = None if version is None else self.get(name, version)
        self.latest(name)  # NotFound for an unknown workflow
        with self.db.write() as conn:
            conn.execute(sa.delete(AW).where(AW.c.account_id == account_id, AW.c.workflow == name))
            if d is not None:
                conn.execute(
                    sa.insert(AW),
                    {
                        "account_id": account_id,
                        "workflow": name,
                        "definition_hash": d.hash,
                        "updated_at": self.clock(),
                    },
                )
        self._choices[(account_id, name)] = (None if d is None else d.hash, time.monotonic())
        return self.for_account(account_id, name)


def _stored_source(definition: Definition) -> str:
    """What ``definition_version.source`` keeps: the YAML as written, unless the parsed spec
    holds data resolved at load time (country holidays), then that spec as JSON."""
    if definition.source_text and definition.spec.calendar.country_holidays is None:
        return definition.source_text
    return json.dumps(definition.to_dict())
