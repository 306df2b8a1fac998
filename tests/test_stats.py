"""Per-state medians (workflow.stats), on both backends: across a migration a ticket that a
migration leaves in its state has not left it - one stay, not two - while a state map that
moves a ticket ends its stay where it was and starts one where it lands; the window of recent
events reaches into history written before events were numbered."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, TECH, new_ticket
from tests.variants import SANTIAGO, variant
from workflow import Tierflow
from workflow.machine import ADMIN
from workflow.models import TicketEvent
from workflow.stats import StateStat, state_stats


def test_a_migration_splits_no_stay_and_a_mapped_state_is_a_move(
    tf: Tierflow, clock: FakeClock
) -> None:
    tf.publish(variant("1.1.0", SANTIAGO))  # the same states, another calendar
    tf.choose_workflow(account=ACCOUNT, workflow="support", version="1.0.0")
    stays, moved = new_ticket(tf, TECH).id, new_ticket(tf, TECH).id
    clock.advance(minutes=10)
    tf.fire(account=ACCOUNT, ticket_id=stays, trigger="triage", role="l1_agent")
    clock.advance(hours=1)
    report = tf.migrate(
        account=ACCOUNT,
        workflow="support",
        from_version="1.0.0",
        to_version="1.1.0",
        state_map={"new": "l1_triage"},
        dry_run=False,
        role=ADMIN,
    )
    assert [(i.ticket_id, i.from_state, i.to_state) for i in report.items] == [
        (stays, "l1_triage", "l1_triage"),
        (moved, "new", "l1_triage"),
    ]
    clock.advance(hours=2)  # 'stays' has been in l1_triage 3 h, across the migration
    tf.fire(account=ACCOUNT, ticket_id=stays, trigger="request_info", role="l1_agent", note="?")
    clock.advance(hours=1)  # 'moved' has been in l1_triage 3 h since the migration moved it
    tf.fire(account=ACCOUNT, ticket_id=moved, trigger="request_info", role="l1_agent", note="?")
    stats = state_stats(tf, account=ACCOUNT, workflow="support")
    assert stats["new"] == StateStat(0, 0, (10 * 60 + 70 * 60) / 2, 2)
    assert stats["l1_triage"] == StateStat(0, 0, 3 * 3600.0, 2)
    assert stats["waiting_on_customer"] == StateStat(2, 0, None, 0)


@pytest.mark.parametrize(
    ("window", "new", "l1_triage"),
    [
        (2, (None, 0), (None, 0)),
        (3, (None, 0), (3000.0, 1)),
        (4, (None, 0), (3000.0, 1)),
        (5, (1800.0, 1), (3000.0, 1)),
        (6, (1200.0, 2), (3000.0, 1)),
        (100, (1200.0, 2), (3000.0, 1)),
    ],
)
def test_the_window_reaches_into_history_written_before_events_were_numbered(
    tf: Tierflow,
    clock: FakeClock,
    window: int,
    new: tuple[float | None, int],
    l1_triage: tuple[float | None, int],
) -> None:
    """A database from before the outbox: its oldest history rows have no sequence. They are
    older than every numbered row, so the window takes them after those, newest first."""
    t1, t2, _t3 = (new_ticket(tf, TECH).id for _ in range(3))
    clock.advance(minutes=10)
    tf.fire(account=ACCOUNT, ticket_id=t1, trigger="triage", role="l1_agent")
    clock.advance(minutes=20)
    tf.fire(account=ACCOUNT, ticket_id=t2, trigger="triage", role="l1_agent")
    tf.update_fields(
        account=ACCOUNT, ticket_id=t1, role="l1_agent", complexity="low", urgency="low"
    )
    clock.advance(minutes=30)
    tf.fire(account=ACCOUNT, ticket_id=t1, trigger="start_solving", role="l1_agent")
    # entering events, newest first: t1 start_solving, t2 triaged, t1 triaged (numbered);
    # t3, t2, t1 created (unnumbered below)
    e = TicketEvent.__table__  # type: ignore[attr-defined]
    with tf.db.write() as conn:
        unnumbered = conn.execute(
            sa.update(e).where(e.c.kind == "created").values(sequence=None, unit_version=None)
        ).rowcount
    assert unnumbered == 3
    stats = state_stats(tf, account=ACCOUNT, workflow="support", window=window)
    assert (stats["new"].median_seconds, stats["new"].samples) == new
    assert (stats["l1_triage"].median_seconds, stats["l1_triage"].samples) == l1_triage
