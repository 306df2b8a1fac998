"""Engine: persisted fires per second in-process on SQLite (WAL) against the same write done with
SQLAlchemy Core (and raw sqlite3, for reference); the machine alone against bare ``transitions``.

The load is the endless valid loop of the default workflow: ``request_info`` (l1_agent, a note)
from ``l1_triage`` to ``waiting_on_customer``, ``customer_replied`` (customer) back. One full
cycle runs before timing, so the first-response SLA clock has stopped and every fire does the
same work.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from transitions import Machine

from workflow import Tierflow, machine_for
from workflow.models import Ticket, TicketEvent
from workflow.records import STATE_FIELDS

from .common import Config, median, row, section

ACCOUNT = "bench"
NOTE = "which username do you use?"
CYCLE = (("request_info", "l1_agent", NOTE), ("customer_replied", "customer", None))
T = Ticket.__table__  # type: ignore[attr-defined]
E = TicketEvent.__table__  # type: ignore[attr-defined]
# every column a unit of work rewrites: the ticket fields history determines
STATE_COLUMNS = [*STATE_FIELDS, "sla_state", "sla_due_at", "sla_risk_at", "sla_breached_at"]


def ticket_pool(tf: Tierflow, n: int, account: str = ACCOUNT) -> list[int]:
    """``n`` tickets in ``l1_triage`` that have been round the loop once."""
    ids = []
    for i in range(n):
        t = tf.create_ticket(
            account=account,
            kind="technical",
            category="login_password",
            subject=f"Cannot log in #{i}",
            description="since this morning",
            channel="chat",
            complexity="low",
            urgency="high",
            actor="widget",
        )
        tf.fire(account=account, ticket_id=t.id, trigger="triage", role="l1_agent")
        ids.append(t.id)
    for trigger, role, note in CYCLE:
        for tid in ids:
            tf.fire(account=account, ticket_id=tid, trigger=trigger, role=role, note=note)
    return ids


def fire_rounds(tf: Tierflow, ids: list[int], rounds: int) -> None:
    """``rounds`` times round ``CYCLE`` on every ticket of ``ids`` (2 fires per ticket)."""
    for _ in range(rounds):
        for trigger, role, note in CYCLE:
            for tid in ids:
                tf.fire(
                    account=ACCOUNT,
                    ticket_id=tid,
                    trigger=trigger,
                    role=role,
                    note=note,
                    actor=role,
                )


def _engine(path: str) -> Tierflow:
    for suffix in ("", "-wal", "-shm"):  # a fresh file every run
        Path(path + suffix).unlink(missing_ok=True)
    tf = Tierflow(f"sqlite:///{path}")
    tf.create_account(slug=ACCOUNT, name="Bench")
    return tf


def bench_tierflow(cfg: Config) -> tuple[list[float], int]:
    """Fires per second of ``Tierflow.fire`` (each repeat: ``engine_fires`` fires)."""
    tf = _engine(str(cfg.workdir / "engine.db"))
    ids = ticket_pool(tf, cfg.engine_tickets)
    rounds = max(1, cfg.engine_fires // (2 * len(ids)))
    fires = rounds * 2 * len(ids)
    out = []
    for _ in range(cfg.engine_repeats):
        t0 = time.perf_counter()
        fire_rounds(tf, ids, rounds)
        out.append(fires / (time.perf_counter() - t0))
    tf.db.dispose()
    return out, fires


def _rows(tf: Tierflow, ids: list[int]) -> dict[int, dict[str, Any]]:
    with tf.db.read() as conn:
        rows = conn.execute(sa.select(T).where(T.c.id.in_(ids))).mappings().all()
    cols = [c for c in STATE_COLUMNS if c in T.c]  # the schema may grow or shrink
    return {r["id"]: {c: r[c] for c in cols} for r in rows}


def _flip(state: dict[str, Any], now: datetime) -> tuple[str, str, str]:
    """Move a ticket row one step round the loop in memory: (trigger, from, to)."""
    src = state["state"]
    dest = "waiting_on_customer" if src == "l1_triage" else "l1_triage"
    trigger = "request_info" if src == "l1_triage" else "customer_replied"
    state.update(state=dest, previous_state=src, state_entered_at=now)
    state["version"] += 1
    return trigger, src, dest


def _event(tid: int, aid: int, seq: int, trigger: str, src: str, dest: str, now: datetime) -> dict:
    return {
        "ticket_id": tid,
        "account_id": aid,
        "seq": seq,
        "kind": "transition",
        "trigger": trigger,
        "from_state": src,
        "to_state": dest,
        "actor": "l1_agent",
        "role": "l1_agent",
        "note": NOTE if trigger == "request_info" else None,
        "data": {},
        "changes": {},
        "response": trigger == "request_info",
        "at": now,
    }


def bench_core(cfg: Config) -> list[float]:
    """The same compare-and-set UPDATE (every state column) + event INSERT + COMMIT per fire,
    in SQLAlchemy Core on the same schema, WAL, synchronous=NORMAL, BEGIN IMMEDIATE."""
    path, ids, aid, states = _ceiling_setup(cfg, "engine_core.db")
    eng = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(eng, "connect")
    def _connect(dbapi: Any, _rec: Any) -> None:
        dbapi.isolation_level = None
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            dbapi.execute(f"PRAGMA {pragma}")

    @sa.event.listens_for(eng, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    # built once, executed with parameters: the lean way to use Core on a hot path
    update = (
        sa.update(T)
        .where(T.c.id == sa.bindparam("b_id"), T.c.version == sa.bindparam("b_version"))
        .values({c: sa.bindparam(c) for c in [*next(iter(states.values())), "updated_at"]})
    )
    insert = sa.insert(E)

    def unit(tid: int) -> None:
        st = states[tid]
        old = st["version"]
        now = datetime.now(UTC)
        trigger, src, dest = _flip(st, now)
        with eng.begin() as conn:
            res = conn.execute(update, {**st, "updated_at": now, "b_id": tid, "b_version": old})
            assert res.rowcount == 1
            conn.execute(insert, _event(tid, aid, old + 1, trigger, src, dest, now))

    out = _rates(cfg, ids, unit)
    eng.dispose()
    return out


def bench_raw(cfg: Config) -> list[float]:
    """The same unit through the sqlite3 module (fewer columns: state, version, timestamps)."""
    path, ids, aid, states = _ceiling_setup(cfg, "engine_raw.db")
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")

    def unit(tid: int) -> None:
        st = states[tid]
        old = st["version"]
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
        trigger, src, dest = _flip(st, now)  # type: ignore[arg-type]
        db.execute("BEGIN IMMEDIATE")
        cur = db.execute(
            "UPDATE ticket SET state=?, previous_state=?, state_entered_at=?, "
            "version=?, updated_at=? WHERE id=? AND version=?",
            (dest, src, now, old + 1, now, tid, old),
        )
        assert cur.rowcount == 1
        db.execute(
            'INSERT INTO ticket_event (ticket_id, account_id, seq, kind, "trigger", '
            "from_state, to_state, actor, role, note, data, changes, response, at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                tid,
                aid,
                old + 1,
                "transition",
                trigger,
                src,
                dest,
                "l1_agent",
                "l1_agent",
                NOTE,
                "{}",
                "{}",
                1,
                now,
            ),
        )
        db.execute("COMMIT")

    out = _rates(cfg, ids, unit)
    db.close()
    return out


def _ceiling_setup(
    cfg: Config, name: str
) -> tuple[Path, list[int], int, dict[int, dict[str, Any]]]:
    """A fresh database with the engine's ticket pool; (path, ids, account id, state rows)."""
    path = cfg.workdir / name
    tf = _engine(str(path))
    ids = ticket_pool(tf, cfg.engine_tickets)
    aid = tf.account_id(ACCOUNT)
    states = _rows(tf, ids)
    tf.db.dispose()
    return path, ids, aid, states


def _rates(cfg: Config, ids: list[int], unit: Callable[[int], None]) -> list[float]:
    """Fires per second of ``unit(ticket_id)`` round every ticket (``engine_fires`` per
    repeat, ``engine_repeats`` repeats)."""
    rounds = max(1, cfg.engine_fires // (2 * len(ids)))
    fires = rounds * 2 * len(ids)
    out = []
    for _ in range(cfg.engine_repeats):
        t0 = time.perf_counter()
        for _ in range(rounds * 2):
            for tid in ids:
                unit(tid)
        out.append(fires / (time.perf_counter() - t0))
    return out


class _Light:
    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def bench_machine(cfg: Config) -> tuple[float, float]:
    """(tierflow machine µs per fire, bare transitions µs per fire), medians of 5 runs."""
    tf = _engine(str(cfg.workdir / "engine_machine.db"))
    (tid,) = ticket_pool(tf, 1)
    d = tf.definition("support")
    m = machine_for(d)
    at_triage = tf.get_ticket(account=ACCOUNT, ticket_id=tid).current
    tf.fire(account=ACCOUNT, ticket_id=tid, trigger="request_info", role="l1_agent", note=NOTE)
    waiting = tf.get_ticket(account=ACCOUNT, ticket_id=tid).current
    tf.db.dispose()
    now = datetime.now(UTC)
    n = cfg.machine_fires // 2

    def ours() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            m.fire(at_triage, "request_info", role="l1_agent", now=now, note=NOTE, data={})
            m.fire(waiting, "customer_replied", role="customer", now=now, note=None, data={})
        return (time.perf_counter() - t0) / (2 * n) * 1e6

    bare_machine = Machine(
        model=None, states=list(d.spec.states), initial="l1_triage", auto_transitions=False
    )
    bare_machine.add_transition("request_info", "l1_triage", "waiting_on_customer")
    bare_machine.add_transition("customer_replied", "waiting_on_customer", "l1_triage")
    ev_ask = bare_machine.events["request_info"]
    ev_reply = bare_machine.events["customer_replied"]
    obj = _Light("l1_triage")

    def bare() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            ev_ask.trigger(obj)
            ev_reply.trigger(obj)
        return (time.perf_counter() - t0) / (2 * n) * 1e6

    ours()
    bare()
    return median([ours() for _ in range(5)]), median([bare() for _ in range(5)])


def run(cfg: Config) -> dict[str, Any]:
    ours, fires = bench_tierflow(cfg)
    core = bench_core(cfg)
    raw = bench_raw(cfg)
    m_ours, m_bare = bench_machine(cfg)
    f_ours, f_core, f_raw = median(ours), median(core), median(raw)
    ratio = f_ours / f_core
    rows = [
        row(
            "persisted fires/s, `Tierflow.fire`, SQLite WAL",
            f_ours,
            "fires/s",
            ceiling=f_core,
            target="≥ 35 % of Core ceiling",
            met=ratio >= 0.35,
            note=f"{1e6 / f_ours:.0f} µs/fire; ceiling {1e6 / f_core:.0f} µs",
        ),
        row(
            "same unit in raw sqlite3 (reference)",
            f_raw,
            "fires/s",
            note=f"{1e6 / f_raw:.0f} µs/unit; Tierflow is {f_ours / f_raw:.0%} of it",
        ),
        row(
            "pure machine decision per fire",
            m_ours,
            "µs",
            ceiling=m_bare,
            ratio=m_bare / m_ours,
            target="(none; reported)",
            note="ceiling: bare `transitions` `events[t].trigger(obj)`",
        ),
    ]
    notes = [
        f"{cfg.engine_tickets} tickets cycling `request_info` (l1_agent, note) ↔ "
        "`customer_replied` (customer) from `l1_triage`, one warm-up cycle first; "
        f"{fires} fires per run, median of {cfg.engine_repeats} runs "
        f"(runs: {', '.join(f'{x:.0f}' for x in ours)} fires/s).",
        "Ceiling: the same compare-and-set UPDATE of every state column "
        "(`WHERE id=? AND version=?`) + `ticket_event` INSERT + COMMIT, SQLAlchemy Core on the "
        "same tables, `BEGIN IMMEDIATE`, WAL, synchronous=NORMAL "
        f"(runs: {', '.join(f'{x:.0f}' for x in core)} fires/s). "
        "`Tierflow.fire` also reads the ticket, decides, folds the event and builds the view.",
        f"Machine: `machine_for(d).fire(...)` (role check, guard context, guards, changes) "
        f"over {cfg.machine_fires} fires vs a bare `Machine(model=None, auto_transitions=False)` "
        "with the same two transitions and no conditions; ratio = bare / ours.",
    ]
    return section("Engine (in-process, SQLite WAL)", rows, notes)
