"""Tickets stored before clocks kept microseconds (whole ``elapsed_s``, floored at every pause)
still load, and migration 0006 re-derives their SLA columns from history: `check` is clean."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, TECH, new_ticket
from workflow import Tierflow, schema
from workflow.records import T


def _make_legacy(tf: Tierflow, ticket_id: int) -> None:
    """Rewrite a ticket's stored clocks the way the old fold stored them: whole seconds."""
    with tf.db.write() as conn:
        row = conn.execute(sa.select(T).where(T.c.number == ticket_id)).mappings().one()
        state: dict[str, Any] = {}
        for name, clock in row["sla_state"].items():
            old = {k: v for k, v in clock.items() if k != "elapsed_us"}
            old["elapsed_s"] = clock["elapsed_us"] // 1_000_000
            state[name] = old
        conn.execute(sa.update(T).where(T.c.id == row["id"]).values(sla_state=state))


def test_legacy_clocks_load_and_migration_0006_refolds_them(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    tf.create_account(slug=ACCOUNT, name="Acme")
    t = new_ticket(tf, TECH)
    tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    clock.advance(seconds=1.9)
    tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="cancel", role="customer")  # resolution: 1.9 s
    untouched = new_ticket(tf, TECH).id
    _make_legacy(tf, t.id)
    view = tf.get_ticket(account=ACCOUNT, ticket_id=t.id)  # old rows still load
    assert view.sla["resolution"]["elapsed_business_seconds"] == 1.0
    assert [p.split(":")[0] for p in tf.check()] == [f"ticket {t.id} of {ACCOUNT}"]
    before = tf.get_ticket(account=ACCOUNT, ticket_id=untouched)

    cfg = schema._config()
    with tf.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    schema.upgrade(tf.db)  # runs 0006

    assert tf.check() == []
    view = tf.get_ticket(account=ACCOUNT, ticket_id=t.id)
    assert view.sla["resolution"]["elapsed_business_seconds"] == 1.9
    assert tf.get_ticket(account=ACCOUNT, ticket_id=untouched) == before
    tf.db.dispose()
