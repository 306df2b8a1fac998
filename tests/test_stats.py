"""Per-state medians (workflow.stats) across a migration: a ticket that a migration leaves in
its state has not left it - one stay, not two - while a state map that moves a ticket ends its
stay where it was and starts one where it lands."""

from __future__ import annotations

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, TECH, new_ticket
from tests.variants import SANTIAGO, variant
from workflow import Tierflow
from workflow.machine import ADMIN
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
