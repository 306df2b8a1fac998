"""Migrating open tickets to another version of their workflow: the dry run, applying it on
mixed tickets, the `migrated` event in the history and the outbox, replay (`check` clean), and
how SLA clocks continue on the new version."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, reach
from tests.variants import ADD_REVIEW, CANCEL_REVIEW, REVIEW_TRANSITIONS, variant
from workflow import Forbidden, InputError, TicketState, Tierflow, builtin_definitions, outbox
from workflow.definition import Definition
from workflow.migrate import MigrationItem, plan_ticket

V1 = builtin_definitions()[0]


def v2() -> Definition:
    return variant("2.0.0", ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW)


def test_dry_run_then_apply_on_mixed_tickets(tf: Tierflow, clock: FakeClock) -> None:
    t = {
        name: reach(tf, name).id
        for name in (
            "new",
            "l1_triage",
            "l2_solving",
            "l3_solution",
            "waiting_on_customer",
            "admin_supervisor",
            "resolved",
            "closed",
        )
    }
    new = v2()
    tf.register(new)  # the current version: new tickets get it, old ones keep 1.0.0
    fresh = reach(tf, "new")
    assert fresh.definition_hash == new.hash
    state_map = {
        "l1_triage": "closed",  # a final state: refused
        "l3_solution": "l3_assessment",
        "admin_supervisor": "admin_review",  # not a state of 2.0.0: refused
    }
    clock.advance(hours=1)
    args = dict(
        account=ACCOUNT,
        workflow="support",
        from_version="1.0.0",
        to_version="2.0.0",
        state_map=state_map,
        role="supervisor",
        actor="ana",
    )
    plan = tf.migrate(**args, dry_run=True)
    assert (plan.from_hash, plan.to_hash, plan.dry_run) == (V1.hash, new.hash, True)
    states = ", ".join(new.spec.states)
    expected = [
        MigrationItem(t["new"], "new", "new", True, None),
        MigrationItem(
            t["l1_triage"],
            "l1_triage",
            "closed",
            False,
            "'closed' is a final state in version 2.0.0: no transition leads on from it",
        ),
        MigrationItem(t["l2_solving"], "l2_solving", "l2_solving", True, None),
        MigrationItem(t["l3_solution"], "l3_solution", "l3_assessment", True, None),
        MigrationItem(
            t["waiting_on_customer"], "waiting_on_customer", "waiting_on_customer", True, None
        ),
        MigrationItem(
            t["admin_supervisor"],
            "admin_supervisor",
            "admin_review",
            False,
            "the state map sends 'admin_supervisor' to 'admin_review', which version 2.0.0 "
            f"does not have (its states: {states})",
        ),
        MigrationItem(t["resolved"], "resolved", "resolved", True, None),
    ]
    assert list(plan.items) == expected  # the closed ticket and the 2.0.0 ticket are not listed
    # a dry run writes nothing
    assert tf.get_ticket(account=ACCOUNT, ticket_id=t["new"]).definition_hash == V1.hash
    before = outbox.bounds(tf, ACCOUNT)

    done = tf.migrate(**args, dry_run=False)
    assert [(i.ticket_id, i.moved) for i in done.items] == [
        (i.ticket_id, i.can_move) for i in expected
    ]
    assert (done.moved, done.refused) == (5, 2)
    for name in ("new", "l2_solving", "l3_solution", "waiting_on_customer", "resolved"):
        ticket = tf.get_ticket(account=ACCOUNT, ticket_id=t[name])
        assert (ticket.workflow_version, ticket.definition_hash) == ("2.0.0", new.hash)
        last = tf.events(account=ACCOUNT, ticket_id=t[name])[-1]
        assert (last.kind, last.from_state, last.to_state, last.actor, last.role) == (
            "migrated",
            name,
            "l3_assessment" if name == "l3_solution" else name,
            "ana",
            "supervisor",
        )
        assert last.data == {
            "workflow": "support",
            "from_version": "1.0.0",
            "from_hash": V1.hash,
            "to_version": "2.0.0",
            "to_hash": new.hash,
        }
    for name in ("l1_triage", "admin_supervisor", "closed"):
        assert tf.get_ticket(account=ACCOUNT, ticket_id=t[name]).definition_hash == V1.hash
    sent = outbox.read_after(tf, ACCOUNT, before[1])
    assert [(e.type, e.ticket_id) for e in sent] == [
        ("ticket.migrated", t[n])
        for n in ("new", "l2_solving", "l3_solution", "waiting_on_customer", "resolved")
    ]
    assert sent[3].ticket["workflow"]["version"] == "2.0.0"
    assert sent[3].ticket["state"] == "waiting_on_customer"
    assert tf.check() == []

    # on 2.0.0 the tickets go on: the new review step, the way back from waiting
    clock.advance(minutes=5)
    ticket = tf.fire(
        account=ACCOUNT, ticket_id=t["l2_solving"], trigger="ask_review", role="l2_specialist"
    )
    assert ticket.state == "l2_review"
    back = tf.fire(
        account=ACCOUNT,
        ticket_id=t["waiting_on_customer"],
        trigger="customer_replied",
        role="customer",
    )
    assert back.state == "l1_triage"
    assert tf.check() == []
    # an outbox event before the migration still carries the ticket on its old version
    first = outbox.read_after(tf, ACCOUNT, 0, limit=1)[0]
    assert first.ticket["workflow"]["version"] == "1.0.0"
    # migrating again finds nothing left to move but the refused ones
    again = tf.migrate(**{**args, "state_map": {}}, dry_run=False)
    assert [(i.ticket_id, i.moved) for i in again.items] == [
        (t["l1_triage"], True),
        (t["admin_supervisor"], True),
    ]
    assert tf.check() == []


def test_refusals_write_nothing(tf: Tierflow) -> None:
    reach(tf, "l1_triage")
    tf.register(v2())
    base = dict(account=ACCOUNT, workflow="support", from_version="1.0.0", to_version="2.0.0")
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"role": "l1_agent"}, Forbidden, "role 'l1_agent' may not migrate tickets"),
        (
            {"role": "supervisor", "to_version": "9.9"},
            InputError,
            "to_version: support has no version '9.9' (published: ",
        ),
        ({"role": "supervisor", "to_version": "1.0.0"}, InputError, "to_version: '1.0.0' is"),
        (
            {"role": "supervisor", "workflow": "billing"},
            InputError,
            "workflow: unknown workflow 'billing' (known: support)",
        ),
        (
            {"role": "supervisor", "state_map": {"l9": "new"}},
            InputError,
            "state_map.l9: 'l9' is not a state of support 1.0.0",
        ),
    ]
    for extra, error, message in cases:
        with pytest.raises(error) as refused:
            tf.migrate(**{**base, **extra}, dry_run=False)  # type: ignore[arg-type]
        assert message in str(refused.value)
    assert tf.events(account=ACCOUNT, ticket_id=1)[-1].kind == "transition"


def test_return_target_lost_is_refused() -> None:
    """A ticket waiting on the customer leads on by returning where it came from: when the new
    version has no such state (and the map gives none), the way back is gone."""
    new = v2()
    waiting = replace(_ticket(), state="waiting_on_customer", previous_state="l1_review")
    assert plan_ticket(V1, new, waiting, {"l1_review": "l1_triage"}).reason is None
    assert plan_ticket(V1, new, waiting, {"l1_review": "l1_triage"}).previous_state == "l1_triage"
    p = plan_ticket(V1, new, waiting, {})
    assert (p.to_state, p.previous_state) == ("waiting_on_customer", None)
    assert p.reason == (
        "'waiting_on_customer' leads on by returning where the ticket came from ('l1_review'), "
        "which version 2.0.0 cannot return to from 'waiting_on_customer' (map it to one of: "
        "l1_triage, l1_solving, l2_solving, l3_assessment, l3_solution, admin_executive, "
        "admin_supervisor)"
    )


def _ticket() -> TicketState:
    from workflow.history import EventRecord, apply

    at = _utc(2026, 11, 24, 14)
    created = EventRecord(
        "created",
        at,
        changes={
            "kind": "technical",
            "category": "login_password",
            "channel": "chat",
            "received_at": at.isoformat(),
        },
    )
    return apply(V1, None, created)


GMT5 = (
    "  timezone: Etc/GMT+4       # the policy's GMT-4 (IANA inverts the sign)",
    "  timezone: Etc/GMT+5",
)
LONGER = ("    target_hours: {all: 9}", "    target_hours: {all: 18}")


def _utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize(
    ("edits", "migrate_at", "used_hours", "due", "breached"),
    [
        # received Tue 14:00 UTC (10:00 at GMT-4); by Wed 13:30 UTC it used 8.5 business hours
        # on the old calendar (Tue 13-22 UTC, Wed from 13 UTC). On GMT-5 (14-23 UTC) it would
        # have used 9 by Tue 23:00 - breached - but time already used is carried, not re-measured:
        # the last half hour runs on the new calendar, which opens Wed 14:00 UTC.
        ((GMT5,), _utc(2026, 11, 25, 13, 30), 8.5, _utc(2026, 11, 25, 14, 30), None),
        # a longer target: 8.5 used, 9.5 left from Wed 09:30 local -> Thu 10:00 local
        ((LONGER,), _utc(2026, 11, 25, 13, 30), 8.5, _utc(2026, 11, 26, 14, 0), None),
        # overdue when it moved (due Wed 10:00 local): the breach is recorded first and stays,
        # though the new target is not reached
        (
            (LONGER,),
            _utc(2026, 11, 25, 15, 0),
            10.0,
            _utc(2026, 11, 25, 14, 0),
            _utc(2026, 11, 25, 14, 0),
        ),
    ],
)
def test_sla_clocks_carry_on(
    tf: Tierflow,
    clock: FakeClock,
    edits: tuple[tuple[str, str], ...],
    migrate_at: datetime,
    used_hours: float,
    due: datetime,
    breached: datetime | None,
) -> None:
    ticket = reach(tf, "l1_triage")  # first response running since received_at (Tue 14:00 UTC)
    new = variant("2.0.0", *edits)
    tf.register(new)
    clock.set(migrate_at)
    tf.migrate(
        account=ACCOUNT,
        workflow="support",
        from_version="1.0.0",
        to_version="2.0.0",
        role="admin",
        dry_run=False,
    )
    moved = tf.get_ticket(account=ACCOUNT, ticket_id=ticket.id)
    fr = moved.sla["first_response"]
    assert moved.current.sla.clocks["first_response"].elapsed == timedelta(hours=used_hours)
    assert (fr["due_at"], fr["breached_at"]) == (due, breached)
    kinds = [e.kind for e in tf.events(account=ACCOUNT, ticket_id=ticket.id)]
    assert kinds[-2:] == (["sla_breached", "migrated"] if breached else ["transition", "migrated"])
    assert tf.check() == []
