"""The transactional outbox: one event per committed change, none for a rolled-back one, the
ticket as the API shows it, per-account sequences in commit order under concurrent writers."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from api.schemas import TicketPublic
from workflow import Tierflow, outbox, prepared, schema
from workflow.db import Database
from workflow.history import EventRecord
from workflow.records import E, T

from .conftest import T0, FakeClock
from .scenarios import ACCOUNT, TECH, new_ticket, reach


def _all(tf: Tierflow, account: str = ACCOUNT) -> list[outbox.StoredEvent]:
    return outbox.read_after(tf, account, 0, limit=10_000)


def _history(tf: Tierflow) -> list[tuple[int, str, Any]]:
    with tf.db.read() as conn:
        rows = conn.execute(  # (the ticket as the API names it: its number in the account)
            sa.select(T.c.number, E.c.kind, E.c.at)
            .join(T, T.c.id == E.c.ticket_id)
            .order_by(E.c.id)
        ).all()
    return [(r.number, r.kind, r.at) for r in rows]


def test_every_committed_change_has_exactly_one_event(tf: Tierflow, clock: FakeClock) -> None:
    t = reach(tf, "resolved")  # created, transitions, field update, playbook steps
    tf.respond(account=ACCOUNT, ticket_id=reach(tf, "l1_triage").id, body="on it", role="l1_agent")
    reach(tf, "l2_solving")  # its clocks run out unattended
    clock.advance(days=30)
    assert tf.scan_sla() > 0
    clock.advance(days=30)
    assert tf.close_expired() >= 1
    assert tf.get_ticket(account=ACCOUNT, ticket_id=t.id).state == "closed"

    events = _all(tf)
    history = _history(tf)
    # one outgoing event per history event, in the order they committed
    assert [(e.ticket_id, e.type, e.at) for e in events] == [
        (tid, outbox.TYPES[kind], at) for tid, kind, at in history
    ]
    assert [e.sequence for e in events] == list(range(1, len(history) + 1))
    types = {e.type for e in events}
    assert types == {
        "ticket.created",
        "ticket.transitioned",
        "ticket.updated",
        "ticket.responded",
        "ticket.sla_breached",
    }
    closing = events[-1]
    assert (closing.type, closing.actor, closing.role) == (
        "ticket.transitioned",
        "auto-close",
        "system",
    )
    breach = next(e for e in events if e.type == "ticket.sla_breached")
    assert (breach.actor, breach.role) == ("sla-scanner", "system")
    first = events[0]
    assert (first.actor, first.role) == ("widget", "integration")


def test_the_ticket_is_the_api_json_after_the_change(tf: Tierflow, clock: FakeClock) -> None:
    t = new_ticket(tf, TECH, customer_name="Ana", customer_email="ana@example.com")
    clock.advance(seconds=90.000123)
    view = tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent", actor="a")
    created, triaged = _all(tf)
    assert created.ticket == TicketPublic.of(t).model_dump(mode="json")
    assert triaged.ticket == TicketPublic.of(view).model_dump(mode="json")
    assert (triaged.ticket["state"], triaged.ticket["version"]) == ("l1_triage", 2)


def test_a_rolled_back_unit_leaves_no_event(tf: Tierflow, monkeypatch: pytest.MonkeyPatch) -> None:
    t = new_ticket(tf, TECH)
    real = outbox.append

    def append_then_fail(*args: Any, **kw: Any) -> None:
        real(*args, **kw)  # written in the unit's transaction ...
        raise RuntimeError("crash before commit")  # ... which then rolls back

    monkeypatch.setattr(outbox, "append", append_then_fail)
    with pytest.raises(RuntimeError, match="crash before commit"):
        tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    with pytest.raises(RuntimeError, match="crash before commit"):
        new_ticket(tf, TECH)
    monkeypatch.setattr(outbox, "append", real)
    assert tf.get_ticket(account=ACCOUNT, ticket_id=t.id).state == "new"
    assert [(e.sequence, e.type) for e in _all(tf)] == [(1, "ticket.created")]
    # the sequence given to the rolled-back units was rolled back with them: no gap
    tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    assert [(e.sequence, e.type) for e in _all(tf)] == [
        (1, "ticket.created"),
        (2, "ticket.transitioned"),
    ]


def test_sequences_are_per_account(tf: Tierflow) -> None:
    tf.create_account(slug="globex", name="Globex")
    new_ticket(tf, TECH)
    tf.create_ticket(account="globex", subject="x", **TECH)
    new_ticket(tf, TECH)
    assert [e.sequence for e in _all(tf)] == [1, 2]
    assert [e.sequence for e in _all(tf, "globex")] == [1]


def test_a_reader_resuming_after_n_never_misses_a_later_commit(tf: Tierflow) -> None:
    """Writers on different tickets of one account commit concurrently; a reader that keeps
    asking for what follows the last sequence it saw ends up with every event exactly once.
    (A sequence allocated before another writer's but committed after it would be skipped.)"""
    tickets = [new_ticket(tf, TECH).id for _ in range(6)]
    rounds = 8
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write(tid: int) -> None:
        try:
            tf.fire(account=ACCOUNT, ticket_id=tid, trigger="triage", role="l1_agent")
            for i in range(rounds):
                tf.fire(
                    account=ACCOUNT,
                    ticket_id=tid,
                    trigger="request_info",
                    role="l1_agent",
                    note="which username?",
                )
                tf.fire(account=ACCOUNT, ticket_id=tid, trigger="customer_replied", role="customer")
                urgency = ("high", "low")[i % 2]
                tf.update_fields(account=ACCOUNT, ticket_id=tid, role="l1_agent", urgency=urgency)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        last = 0
        for _ in range(100_000):  # bounded
            finished = done.is_set()
            batch = outbox.read_after(tf, ACCOUNT, last)
            seen.extend(e.sequence for e in batch)
            if batch:
                last = batch[-1].sequence
            elif finished:
                return

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(tid,)) for tid in tickets]
    reader.start()
    for th in writers:
        th.start()
    for th in writers:
        th.join(timeout=120)
    done.set()
    reader.join(timeout=120)
    assert errors == []
    total = len(_history(tf))
    assert seen == list(range(1, total + 1))
    assert [e.sequence for e in _all(tf)] == list(range(1, total + 1))


def test_a_unit_with_a_due_breach_sends_both_events_with_the_ticket_after_it(
    tf: Tierflow, clock: FakeClock
) -> None:
    t = reach(tf, "l2_solving")
    before = len(_all(tf))
    clock.advance(days=30)  # its clocks ran out; the next unit records the breaches first
    view = tf.fire(
        account=ACCOUNT, ticket_id=t.id, trigger="request_info", role="l2_specialist", note="logs"
    )
    new = _all(tf)[before:]
    breaches = len([e for e in new if e.type == "ticket.sla_breached"])
    assert breaches >= 1
    assert [e.type for e in new] == ["ticket.sla_breached"] * breaches + ["ticket.transitioned"]
    assert [e.sequence for e in new] == list(range(before + 1, before + breaches + 2))
    assert {e.version for e in new} == {view.version}
    assert all(e.ticket == TicketPublic.of(view).model_dump(mode="json") for e in new)


def _globex(tf: Tierflow) -> None:
    tf.create_ticket(account="globex", subject="s", description="d", actor="widget", **TECH)


def test_pruning_moves_the_floor_and_keeps_the_history(tf: Tierflow, clock: FakeClock) -> None:
    tf.create_account(slug="globex", name="Globex")
    reach(tf, "l1_triage")  # 1, 2
    _globex(tf)  # globex 1
    clock.advance(days=8)
    reach(tf, "l1_triage")  # 3, 4
    history = len(_history(tf))
    assert outbox.prune(tf, before=clock() - timedelta(days=7)) == 2  # acme 1, 2; globex's newest
    assert outbox.bounds(tf, ACCOUNT) == (3, 4)
    assert outbox.bounds(tf, "globex") == (1, 1)  # an account's newest event stays above it
    assert outbox.prune(tf, before=clock() - timedelta(days=7)) == 0
    assert len(_history(tf)) == history  # nothing deleted: the events are the history
    assert [e.sequence for e in _all(tf)] == [1, 2, 3, 4]  # still readable as such
    reach(tf, "l1_triage")
    assert outbox.bounds(tf, ACCOUNT) == (3, 6)


def test_the_migration_carries_the_outbox_over_with_its_numbers(
    db_url: str, clock: FakeClock
) -> None:
    tf = Tierflow(db_url, clock=clock)
    tf.create_account(slug="acme", name="Acme")
    tf.create_account(slug="globex", name="Globex")
    t = reach(tf, "l2_solving")
    _globex(tf)
    clock.advance(days=30)  # a unit of several events: breaches, then the transition
    tf.fire(
        account=ACCOUNT, ticket_id=t.id, trigger="request_info", role="l2_specialist", note="logs"
    )
    reach(tf, "l1_triage")
    before = {a: [e.payload() for e in outbox.read_after(tf, a, 0)] for a in (ACCOUNT, "globex")}
    assert len({(e.ticket_id, e.version) for e in _all(tf)}) < len(before[ACCOUNT])
    tf.db.dispose()
    db = Database(db_url)
    cfg = schema._config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0017")  # events in outbox_event, as they were stored
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outbox_event")).scalar_one() == sum(
            len(v) for v in before.values()
        )
    schema.upgrade(db)
    db.dispose()
    tf = Tierflow(db_url, clock=clock)
    after = {a: [e.payload() for e in outbox.read_after(tf, a, 0)] for a in (ACCOUNT, "globex")}
    assert after == before
    _globex(tf)  # numbering goes on after the account's last
    assert [e.sequence for e in outbox.read_after(tf, "globex", 0)] == [1, 2]
    tf.db.dispose()


def _pg(tf: Tierflow) -> None:
    if tf.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")


def test_postgresql_takes_each_number_in_its_history_rows_insert(
    tf: Tierflow, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account's counter is raised by the history INSERT itself (a CTE of it): no
    statement of its own, so its row lock is taken by the unit's last statement."""
    _pg(tf)
    t = reach(tf, "l2_solving")
    before = len(_all(tf))
    clock.advance(days=30)  # the unit records its due breaches first: several history rows
    sent: list[tuple[str, int]] = []
    real = prepared._run

    def spy(conn: Any, sql: str, params: Any, **kw: Any) -> Any:
        sent.append((sql, len(params) if kw.get("many") else 1))
        return real(conn, sql, params, **kw)

    monkeypatch.setattr(prepared, "_run", spy)
    tf.fire(
        account=ACCOUNT, ticket_id=t.id, trigger="request_info", role="l2_specialist", note="logs"
    )
    monkeypatch.undo()
    new = _all(tf)[before:]
    touching = [(sql, n) for sql, n in sent if "outbox_sequence" in sql or "ticket_event" in sql]
    assert len(touching) == 1  # one execution (an executemany for several rows)
    sql, rows = touching[0]
    assert " ".join(sql.split()).startswith("WITH raised AS (INSERT INTO outbox_sequence")
    assert "INSERT INTO ticket_event" in sql
    assert rows == len(new) >= 2
    assert touching[0] == (sent[-1][0], sent[-1][1])  # the unit's last statement
    assert [e.sequence for e in new] == list(range(before + 1, before + len(new) + 1))


def test_postgresql_a_second_writer_of_the_account_commits_after_the_first(tf: Tierflow) -> None:
    """The first unit's history INSERT holds the account's counter until it commits: a second
    unit of the account waits in its own INSERT, then takes the next number, so a reader
    never sees the larger number before the smaller one."""
    _pg(tf)
    keys = []
    for _ in range(2):
        number = new_ticket(tf, TECH).id
        with tf.db.read() as conn:
            keys.append(int(conn.execute(sa.select(T.c.id).where(T.c.number == number)).scalar()))
    account_id = tf.account_id(ACCOUNT)
    taken, go, second_done = threading.Event(), threading.Event(), threading.Event()
    pids: list[int] = []
    errors: list[BaseException] = []

    def unit(key: int, first: bool) -> None:
        try:
            with tf.db.write() as conn:
                if not first:
                    pids.append(int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()))
                row = tf._event_rows(
                    key,
                    account_id,
                    [(EventRecord(kind="comment", at=T0), "n")],
                    1,
                    "a",
                    "l1_agent",
                    "internal",
                )
                outbox.append(conn, account_id, 2, row)
                if first:
                    taken.set()
                    assert go.wait(timeout=60)
            if not first:
                second_done.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    first = threading.Thread(target=unit, args=(keys[0], True))
    first.start()
    assert taken.wait(timeout=60)
    second = threading.Thread(target=unit, args=(keys[1], False))
    second.start()
    waiting = sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    admin = sa.create_engine(tf.db.url, poolclass=sa.pool.NullPool)
    try:
        for _ in range(6000):  # until the second unit waits for the first's lock (bounded)
            if pids:
                with admin.connect() as conn:
                    if conn.execute(waiting, {"pid": pids[0]}).scalar() == "Lock":
                        break
            second_done.wait(timeout=0.01)
        else:  # pragma: no cover
            pytest.fail("the second unit never waited for the first")
    finally:
        admin.dispose()
    assert not second_done.is_set()
    assert [e.sequence for e in _all(tf)] == [1, 2]  # the two tickets' creations only
    go.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert errors == []
    new = _all(tf)[2:]
    assert [(e.sequence, e.ticket_id) for e in new] == [(3, 1), (4, 2)]
