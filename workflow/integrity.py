"""History is the truth: replay every ticket's events and compare with the stored ticket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from . import counts
from .history import replay
from .records import STATE_FIELDS, E, T, record_of, state_of

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["check", "refold_sla"]


def check(tf: Tierflow, *, batch: int = 500) -> list[str]:
    """Every disagreement between a ticket's history and its stored row, as readable lines
    (empty when all agree). Reads in batches, so it works on any size of database."""
    problems: list[str] = []
    with tf.db.read() as conn:
        want, have = counts.recount(conn), counts.stored(conn)
    for key in sorted(want.keys() | have.keys()):
        if want.get(key, (0, 0)) != have.get(key, (0, 0)):
            a, w, s = key
            problems.append(
                f"state counts: account {a} {w} {s}: stored (tickets, breached) "
                f"{have.get(key, (0, 0))} != counted {want.get(key, (0, 0))}"
            )
    last = 0
    while True:
        with tf.db.read() as conn:
            tickets = [
                dict(r)
                for r in conn.execute(
                    sa.select(T).where(T.c.id > last).order_by(T.c.id).limit(batch)
                ).mappings()
            ]
            if not tickets:
                return problems
            ids = [t["id"] for t in tickets]
            events: dict[int, list[RowMapping]] = {i: [] for i in ids}
            for e in conn.execute(
                sa.select(E).where(E.c.ticket_id.in_(ids)).order_by(E.c.ticket_id, E.c.seq)
            ).mappings():
                events[e["ticket_id"]].append(e)
        for t in tickets:
            problems.extend(_check_one(tf, t, events[t["id"]]))
        last = ids[-1]


def _check_one(tf: Tierflow, row: dict[str, Any], events: list[RowMapping]) -> list[str]:
    tid = f"{row['number']} of {tf.account_slug(row['account_id'])}"  # as its account names it
    seqs = [e["seq"] for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        return [f"ticket {tid}: event seq {seqs} is not 1..{len(seqs)}"]
    try:
        d = tf.registry.by_hash(row["definition_hash"])
        replayed = replay(d, [record_of(e) for e in events], resolve=tf.registry.by_hash)
    except Exception as exc:  # a history that cannot be replayed is exactly what we look for
        return [f"ticket {tid}: history does not replay: {exc}"]
    stored = state_of(row)
    return [
        f"ticket {tid}: {name} stored {getattr(stored, name)!r} != replayed "
        f"{getattr(replayed, name)!r}"
        for name in (*STATE_FIELDS, "sla")
        if getattr(stored, name) != getattr(replayed, name)
    ]


def refold_sla(conn: Connection, *, batch: int = 500) -> int:
    """Re-derive the SLA columns of tickets stored before clocks kept microseconds (their
    clocks carry whole ``elapsed_s``) by replaying their histories with today's rules; then
    rebuild the per-state counts from the tickets. Returns how many tickets changed. Run by
    migration 0006, on its connection, so ``tierflow check`` stays clean after an upgrade."""
    from .definition import parse_text
    from .models import DefinitionVersion, StateCount

    dv = DefinitionVersion.__table__  # type: ignore[attr-defined]
    sc = StateCount.__table__  # type: ignore[attr-defined]
    # only the columns the tables have at this revision (later revisions add to the models),
    # read through the models' types (instants come back aware)
    inspector = sa.inspect(conn)
    t_cols = [T.c[c["name"]] for c in inspector.get_columns("ticket")]
    e_cols = [E.c[c["name"]] for c in inspector.get_columns("ticket_event")]
    definitions: dict[str, Any] = {}
    changed = 0
    last = 0
    while True:
        tickets = [
            dict(r)
            for r in conn.execute(
                sa.select(*t_cols).where(T.c.id > last).order_by(T.c.id).limit(batch)
            ).mappings()
        ]
        if not tickets:
            break
        last = tickets[-1]["id"]
        legacy = [
            t
            for t in tickets
            if any("elapsed_us" not in c for c in (t["sla_state"] or {}).values())
        ]
        if not legacy:
            continue
        events: dict[int, list[RowMapping]] = {t["id"]: [] for t in legacy}
        for e in conn.execute(
            sa.select(*e_cols)
            .where(E.c.ticket_id.in_(list(events)))
            .order_by(E.c.ticket_id, E.c.seq)
        ).mappings():
            events[e["ticket_id"]].append(e)
        for t in legacy:
            h = t["definition_hash"]
            if h not in definitions:
                source = conn.execute(sa.select(dv.c.source).where(dv.c.hash == h)).scalar_one()
                definitions[h] = parse_text(source, source=f"stored definition {h}")
            try:
                replayed = replay(definitions[h], (record_of(e) for e in events[t["id"]]))
            except Exception:  # left for `tierflow check` to report
                continue
            columns = replayed.sla.as_columns()
            conn.execute(sa.update(T).where(T.c.id == t["id"]).values(**columns))
            changed += 1
    if changed:
        conn.execute(sa.delete(sc))
        rows = [
            {"account_id": a, "workflow": w, "state": s, "shard": 0, "tickets": n, "breached": b}
            for (a, w, s), (n, b) in counts.recount(conn).items()
        ]
        if rows:
            conn.execute(sa.insert(sc), rows)
    return changed
