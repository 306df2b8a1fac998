"""Scale: one account with 1,000,000 tickets (and their histories) in a SQLite file; the queue
page, ``?sla=breached``, counts per state and the live diagram, each in ms; the database size.

Generation is fast and in bulk: a handful of *template* tickets are driven through the engine
to every state (so rows and histories are exactly what tierflow writes), then copied a million
times with ``INSERT … SELECT`` inside SQLite, each copy shifted back in time by its age (ids
grow with ``received_at``, a year of tickets). Indexes are dropped for the copy and rebuilt
after. Open tickets are mostly recent; the SLA scanner is assumed to have run (past-due running
clocks have their breach recorded).

The copies are shaped like tierflow's rows, not replayable histories: ``tierflow check`` reports
them. A copy keeps its template's clock figures (business seconds elapsed) while its instants
move by an age in plain seconds, into other business hours; its ``created`` event keeps the
template's ``received_at``; the breaches set here have no ``sla_breached`` event. The queries
measured here read the stored columns only, so none of that changes a figure.
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workflow import Tierflow
from workflow.models import Ticket

from .common import Config, median, row, section

ACCOUNT = "bench"
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # a Tuesday, 14:00 in the policy's zone
SPAN_DAYS = 365
RECENT = 0.05  # the newest 5 % of tickets (~18 days): mostly open
OPEN_IF_RECENT = 0.80
OPEN_IF_OLDER = 0.02  # long-running stragglers

TECH = {"kind": "technical", "category": "login_password", "channel": "chat"}
TECH_OTHER = {"kind": "technical", "category": "other", "channel": "help_center"}
ADMIN_A = {"kind": "administrative", "category": "pricing", "channel": "chat"}
ADMIN_B = {"kind": "administrative", "category": "payments", "channel": "chat"}
PRIORITIES = [("low", "high"), ("high", "high"), ("medium", "low"), ("low", "low")]

# state -> (fields, steps, weight among open (or done) tickets); steps as in tests/scenarios
Step = tuple[Any, ...]
TRIAGE: list[Step] = [("triage", "l1_agent", None, None)]
SOLVING: list[Step] = [*TRIAGE, ("start_solving", "l1_agent", None, None)]
L2: list[Step] = [*TRIAGE, ("escalate", "l1_agent", None, {"channel": "phone"})]
OPEN: dict[str, tuple[dict[str, str], list[Step], int, bool]] = {
    # state: (fields, steps, weight, set complexity/urgency after triage)
    "new": (TECH, [], 10, False),
    "l1_triage": (TECH, TRIAGE, 20, True),
    "l1_solving": (TECH, SOLVING, 20, True),
    "waiting_on_customer": (
        TECH,
        [*TRIAGE, ("request_info", "l1_agent", "which username do you use?", None)],
        15,
        True,
    ),
    "l2_solving": (TECH_OTHER, L2, 15, True),
    "l3_assessment": (
        TECH_OTHER,
        [*L2, ("escalate", "l2_specialist", "replication lag on the EU cluster", None)],
        5,
        True,
    ),
    "admin_executive": (ADMIN_A, [("take", "executive", None, None)], 10, False),
    "admin_supervisor": (
        ADMIN_B,
        [("take", "executive", None, None), ("refer_to_supervisor", "executive", None, None)],
        5,
        False,
    ),
}
RESOLVE: list[Step] = [*SOLVING, ("resolve", "l1_agent", "password reset link sent", None)]
DONE = {
    "resolved": (TECH, RESOLVE, 15, True),
    "closed": (TECH, [*RESOLVE, ("close", "customer", None, None)], 85, True),
}


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _templates(tf: Tierflow, clock: _Clock) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Template tickets through the engine: ([(id, weight)] open, [(id, weight)] done)."""
    out: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    for is_open, table in ((True, OPEN), (False, DONE)):
        for fields, steps, weight, prioritised in table.values():
            variants = PRIORITIES if prioritised else [(None, None)]
            for complexity, urgency in variants:
                clock.now = NOW - timedelta(hours=3)
                t = tf.create_ticket(
                    account=ACCOUNT, subject="Template", description="bench", **fields
                )
                for n, step in enumerate(steps):
                    clock.now += timedelta(minutes=7)
                    trigger, role, note, data = step
                    tf.fire(
                        account=ACCOUNT,
                        ticket_id=t.id,
                        trigger=trigger,
                        role=role,
                        note=note,
                        data=data,
                        actor=role,
                    )
                    if n == 0 and complexity is not None:
                        tf.update_fields(
                            account=ACCOUNT,
                            ticket_id=t.id,
                            role="l1_agent",
                            complexity=complexity,
                            urgency=urgency,
                        )
                out[is_open].append((t.id, max(1, weight * 10 // len(variants))))
    return out[True], out[False]


def _shift(col: str) -> str:
    """SQL moving a stored instant (``YYYY-MM-DD HH:MM:SS.ffffff``) back by ``g.age`` s."""
    return (
        f"CASE WHEN {col} IS NULL THEN NULL ELSE "
        f"strftime('%Y-%m-%d %H:%M:%S', {col}, '-' || g.age || ' seconds') || "
        f"substr({col}, 20) END"
    )


TICKET_COLS = [c.name for c in Ticket.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
INSTANTS = {
    "received_at",
    "state_entered_at",
    "first_response_at",
    "resolved_at",
    "sla_due_at",
    "sla_risk_at",
    "sla_breached_at",
    "created_at",
    "updated_at",
}
EVENT_COLS = [
    "account_id",
    "seq",
    "kind",
    '"trigger"',
    "from_state",
    "to_state",
    "actor",
    "role",
    "note",
    "data",
    "changes",
    "response",
    "at",
]


def generate(path: Path, n: int) -> dict[str, Any]:
    """Write ``n`` tickets (+ histories) into a fresh SQLite file at ``path``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    clock = _Clock(NOW)
    tf = Tierflow(f"sqlite:///{path}", clock=clock)
    tf.create_account(slug=ACCOUNT, name="Bench")
    open_t, done_t = _templates(tf, clock)
    tf.db.dispose()

    rng = random.Random(7)

    def pick(choices: list[tuple[int, int]]) -> list[int]:
        return [tid for tid, w in choices for _ in range(w)]

    open_pool, done_pool = pick(open_t), pick(done_t)
    span = SPAN_DAYS * 86400
    gen = []
    for i in range(1, n + 1):
        age = (n - i) * span // n + rng.randrange(60)
        recent = i > n * (1 - RECENT)
        is_open = rng.random() < (OPEN_IF_RECENT if recent else OPEN_IF_OLDER)
        tmpl = rng.choice(open_pool if is_open else done_pool)
        gen.append((i, tmpl, age))

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    db.execute("PRAGMA temp_store=MEMORY")
    base = db.execute("SELECT max(id) FROM ticket").fetchone()[0]
    top = db.execute("SELECT max(number) FROM ticket").fetchone()[0]  # (above every account's)
    indexes = [
        (name, sql)
        for name, sql in db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('ticket', 'ticket_event')"
        )
    ]
    db.execute("BEGIN")
    for name, _sql in indexes:
        db.execute(f'DROP INDEX "{name}"')
    db.execute("CREATE TEMP TABLE g (i INTEGER PRIMARY KEY, tmpl INTEGER, age INTEGER)")
    db.executemany("INSERT INTO g VALUES (?, ?, ?)", gen)
    made = {"subject": "'Cannot log in #' || g.i", "number": f"{top} + g.i"}
    select = ", ".join(
        _shift(f"t.{c}") if c in INSTANTS else made.get(c, f"t.{c}") for c in TICKET_COLS
    )
    db.execute(
        f"INSERT INTO ticket (id, {', '.join(TICKET_COLS)}) "
        f"SELECT {base} + g.i, {select} FROM g JOIN ticket t ON t.id = g.tmpl ORDER BY g.i"
    )
    ev_select = ", ".join(_shift(f"e.{c}") if c == "at" else f"e.{c}" for c in EVENT_COLS)
    db.execute(
        f"INSERT INTO ticket_event (ticket_id, {', '.join(EVENT_COLS)}) "
        f"SELECT {base} + g.i, {ev_select} FROM g JOIN ticket_event e ON e.ticket_id = g.tmpl "
        "ORDER BY g.i, e.seq"
    )
    now = NOW.replace(tzinfo=None).isoformat(" ", "microseconds")
    # the scanner has run: running clocks past due have their breach recorded
    db.execute(
        "UPDATE ticket SET sla_breached_at = sla_due_at, sla_due_at = NULL "
        f"WHERE id > {base} AND sla_due_at <= ?",
        (now,),
    )
    # and one done ticket in ten breached its SLA on the way
    db.execute(
        "UPDATE ticket SET sla_breached_at = "
        "strftime('%Y-%m-%d %H:%M:%S', received_at, '+2 days') || '.000000' "
        f"WHERE id > {base} AND resolved_at IS NOT NULL AND id % 10 = 0"
    )
    # the engine keeps state_count in step with every ticket it writes; rows written here
    # behind its back need the same recount its migration does
    db.execute("DELETE FROM state_count")
    db.execute(
        "INSERT INTO state_count (account_id, workflow, state, shard, tickets, breached) "
        "SELECT account_id, workflow, state, id % 8, count(*), "
        "sum(CASE WHEN sla_breached_at IS NOT NULL THEN 1 ELSE 0 END) "
        "FROM ticket GROUP BY account_id, workflow, state, id % 8"
    )
    db.execute(
        "UPDATE account SET last_ticket_number = "
        "(SELECT coalesce(max(number), 0) FROM ticket WHERE account_id = account.id)"
    )
    db.execute("COMMIT")
    for _name, sql in indexes:
        db.execute(sql)
    db.execute("PRAGMA journal_mode=WAL")
    counts = {
        "tickets": db.execute("SELECT count(*) FROM ticket").fetchone()[0],
        "events": db.execute("SELECT count(*) FROM ticket_event").fetchone()[0],
        "open": db.execute("SELECT count(*) FROM ticket WHERE resolved_at IS NULL").fetchone()[0],
        "breached": db.execute(
            "SELECT count(*) FROM ticket WHERE sla_breached_at IS NOT NULL OR sla_due_at <= ?",
            (now,),
        ).fetchone()[0],
    }
    db.close()
    counts["seconds"] = time.perf_counter() - t0
    counts["bytes"] = sum(
        Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()
    )
    return counts


def _timed(fn: Any, repeats: int) -> tuple[float, float, Any]:
    """(median ms, max ms, last result) of ``repeats`` calls after one warm-up call."""
    got = fn()
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return median(ms), max(ms), got


def run(cfg: Config) -> dict[str, Any]:
    path = cfg.workdir / "scale.db"
    info = generate(path, cfg.scale_tickets)
    tf = Tierflow(f"sqlite:///{path}", clock=_Clock(NOW), create_schema=False)
    d = tf.definition("support")
    rows: list[dict[str, Any]] = []
    notes = []
    n = cfg.scale_tickets
    label = f"{n:,}"
    target = "≤ 20 ms"

    def add(figure: str, fn: Any) -> Any:
        med, worst, got = _timed(fn, cfg.scale_repeats)
        rows.append(
            row(figure, med, "ms", target=target, met=med <= 20, note=f"max {worst:.1f} ms")
        )
        return got

    page = add(f"queue page (50), {label} tickets", lambda: tf.queue(account=ACCOUNT, limit=50))
    breached = add(
        f"`?sla=breached` page (50), {label} tickets",
        lambda: tf.list_tickets(account=ACCOUNT, sla="breached", limit=50),
    )
    try:
        from workflow.stats import state_stats

        def stats() -> Any:
            return state_stats(tf, account=ACCOUNT, workflow="support")

        how = "`workflow.stats.state_stats` (GROUP BY + medians over recent history)"
    except ImportError:

        def stats() -> Any:
            with tf.db.read() as conn:
                return conn.execute(
                    sa.text(
                        "SELECT state, count(*) FROM ticket WHERE account_id = :a GROUP BY state"
                    ),
                    {"a": tf.account_id(ACCOUNT)},
                ).all()

        how = "a plain GROUP BY (workflow.stats not available yet)"
    per_state = add(f"counts per state, {label} tickets", stats)

    def group_by() -> Any:
        with tf.db.read() as conn:
            return conn.execute(
                sa.text(
                    "SELECT state, count(*) FROM ticket WHERE account_id = :a AND "
                    "workflow = 'support' GROUP BY state"
                ),
                {"a": tf.account_id(ACCOUNT)},
            ).all()

    med, worst, _ = _timed(group_by, cfg.scale_repeats)
    rows.append(
        row(
            "… of which a bare `GROUP BY state` (diagnostic)",
            med,
            "ms",
            note=f"max {worst:.1f} ms; the counting alone, no breach sums or medians",
        )
    )
    try:
        from diagrams import live_diagram, render, to_dot

        def live() -> str:
            s = stats()
            return str(to_dot(live_diagram(d, s, account=ACCOUNT)))

        add(f"live diagram (stats + DOT), {label} tickets", live)
        med, worst, _ = _timed(
            lambda: render(live_diagram(d, stats(), account=ACCOUNT), "svg"),
            max(3, cfg.scale_repeats // 3),
        )
        rows.append(
            row(
                "live diagram as SVG (incl. `dot` process)",
                med,
                "ms",
                note=f"max {worst:.1f} ms; no target (Graphviz)",
            )
        )
    except Exception as exc:  # the diagrams package may not be there (yet)
        rows.append(row("live diagram", "not available yet", note=f"{type(exc).__name__}: {exc}"))
    rows.append(
        row(
            "database size",
            info["bytes"] / 2**20,
            "MiB",
            note=f"{info['tickets']:,} tickets, {info['events']:,} events",
        )
    )
    tf.db.dispose()
    notes += [
        f"Data: `{path}` (temporary, removed after the run): one account holding "
        f"{info['tickets']:,} tickets ({info['open']:,} open, {info['breached']:,} with a "
        f"breached SLA) and {info['events']:,} history events, generated in "
        f"{info['seconds']:.1f} s. Ids grow with `received_at` over {SPAN_DAYS} days; the "
        f"newest {RECENT:.0%} are {OPEN_IF_RECENT:.0%} open, older ones "
        f"{OPEN_IF_OLDER:.0%}; open tickets spread over new / L1 / waiting / L2 / L3 / "
        "administrative states and four priorities; one done ticket in ten breached.",
        f"Each figure: median of {cfg.scale_repeats} calls after one warm-up (warm page "
        "cache), through the engine's own methods (`Tierflow.queue`, "
        f"`Tierflow.list_tickets(sla='breached')`), building the views they return. "
        f"Counts per state: {how}.",
        f"Results: queue page {len(page)} tickets, breached page {len(breached[0])}, "
        f"{len(per_state)} states.",
    ]
    return section(f"Scale ({label} tickets, SQLite)", rows, notes)
