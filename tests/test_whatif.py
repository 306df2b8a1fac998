"""What-if: an account's real history replayed through a candidate definition - attainment
before and after a calendar change (computed by the clocks live tickets use), the events the
candidate's guards would have refused, and nothing written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, reach
from tests.variants import PLAN_GUARD, SANTIAGO, variant
from workflow import InputError, TicketView, Tierflow, builtin_definitions, outbox
from workflow.whatif import what_if

V1 = builtin_definitions()[0]
SINCE, UNTIL = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)
EVALUATED = datetime(2026, 12, 10, 12, 30, tzinfo=UTC)


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


# (received, responded or None, complexity, urgency). GMT-4 opens 13:00-22:00 UTC; Santiago in
# December (UTC-3) 12:00-21:00 UTC, and Tue 8 December is a holiday in Chile.
TICKETS = [
    # A, on Chile's holiday: GMT-4 due Tue 22:00 UTC, answered Wed 15:00 -> breached (11 h);
    # Santiago starts counting Wed 12:00 UTC -> met (3 h)
    (_utc(8, 13), _utc(9, 15), "low", "high"),
    # B: GMT-4 13:00-21:30 -> met (8.5 h); Santiago 12:00-21:00 is 9 h -> breached (9 h used)
    (_utc(7, 12), _utc(7, 21, 30), "high", "critical"),
    # C, never answered: GMT-4 due Wed 22:00 UTC -> breached by Thu 12:30; Santiago has used
    # 8.5 h by then -> still open
    (_utc(9, 13), None, "low", "low"),
]


def _run(tf: Tierflow, clock: FakeClock, account: str) -> list[TicketView]:
    out = []
    for received, responded, complexity, urgency in TICKETS:
        clock.set(received)
        t = tf.create_ticket(
            account=account,
            kind="technical",
            category="login_password",
            subject="Cannot log in",
            channel="chat",
            complexity=complexity,
            urgency=urgency,
        )
        if responded is not None:
            clock.set(responded)
            tf.respond(account=account, ticket_id=t.id, body="on it", role="l1_agent")
        out.append(t)
    clock.set(EVALUATED)
    return out


def test_calendar_change_attainment_before_and_after(tf: Tierflow, clock: FakeClock) -> None:
    _run(tf, clock, ACCOUNT)
    santiago = variant("1.2.0", SANTIAGO)
    report = what_if(tf, account=ACCOUNT, candidate=santiago, since=SINCE, until=UNTIL).to_dict()
    assert report["evaluated_at"] == EVALUATED
    current, candidate = report["current"], report["candidate"]
    assert current["versions"] == [f"1.0.0 #{V1.hash}"]
    assert candidate["versions"] == [f"1.2.0 #{santiago.hash}"]
    assert (current["tickets"], candidate["tickets"]) == (3, 3)
    assert current["first_response"] == {"met": 1, "breached": 2, "open": 0, "share_met": 1 / 3}
    assert candidate["first_response"] == {"met": 1, "breached": 1, "open": 1, "share_met": 0.5}
    assert current["breaches_by_priority"] == {"P2": 1, "P4": 1}
    assert candidate["breaches_by_priority"] == {"P1": 1}
    assert current["median_first_response_business_seconds"] == (11 + 8.5) / 2 * 3600
    assert candidate["median_first_response_business_seconds"] == (3 + 9) / 2 * 3600
    # no target on resolution in either version: nothing to attain
    assert (
        current["resolution"]
        == candidate["resolution"]
        == {
            "met": 0,
            "breached": 0,
            "open": 0,
            "share_met": None,
        }
    )
    assert report["refused"] == [] and report["refused_total"] == 0


def test_the_candidate_side_is_what_live_tickets_on_it_show(tf: Tierflow, clock: FakeClock) -> None:
    """The same operations at the same instants, run live on the candidate in another account:
    every clock of every live ticket agrees with the what-if replay."""
    _run(tf, clock, ACCOUNT)
    santiago = variant("1.2.0", SANTIAGO)
    tf.register(santiago)  # new tickets run on it
    tf.create_account(slug="live", name="Live on Santiago")
    live = _run(tf, clock, "live")
    tf.scan_sla()  # live breaches recorded as they would be in service
    statuses = [
        tf.get_ticket(account="live", ticket_id=t.id).sla["first_response"]["status"] for t in live
    ]
    assert statuses == ["met", "breached", "running"]
    report = what_if(tf, account=ACCOUNT, candidate=santiago, since=SINCE, until=UNTIL)
    live_report = what_if(tf, account="live", candidate=santiago, since=SINCE, until=UNTIL)
    # replaying the live account through its own version reproduces what happened there ...
    assert live_report.current.to_dict() | {"label": "", "versions": []} == (
        live_report.candidate.to_dict() | {"label": "", "versions": []}
    )
    # ... and the first account's replay through the candidate is exactly that
    assert report.candidate.to_dict() == live_report.candidate.to_dict()
    assert report.candidate.first_response.to_dict() == live_report.current.first_response.to_dict()


def test_events_the_candidates_guards_would_refuse(tf: Tierflow, clock: FakeClock) -> None:
    custom = reach(tf, "l3_solution")  # planned with approach: custom
    reach(tf, "resolved")
    before = (outbox.bounds(tf, ACCOUNT), [tf.events(account=ACCOUNT, ticket_id=i) for i in (1, 2)])
    strict = variant("1.3.0", PLAN_GUARD)
    report = what_if(
        tf, account=ACCOUNT, candidate=strict, since=SINCE.replace(month=11), until=UNTIL
    )
    plan = [
        e for e in tf.events(account=ACCOUNT, ticket_id=custom.id) if e.trigger == "plan_solution"
    ]
    assert report.to_dict()["refused"] == [
        {
            "ticket": custom.id,
            "seq": plan[0].seq,
            "at": plan[0].at,
            "event": "plan_solution",
            "from_state": "l3_assessment",
            "guard": "data_one_of",
            "message": "data.approach must be one of best (got 'custom')",
        }
    ]
    assert report.refused_total == 1
    assert report.candidate.tickets == 2
    # nothing written
    assert (
        outbox.bounds(tf, ACCOUNT),
        [tf.events(account=ACCOUNT, ticket_id=i) for i in (1, 2)],
    ) == before


def test_a_trigger_the_candidate_lacks_is_refused(tf: Tierflow) -> None:
    ticket = reach(tf, "admin_supervisor")
    reach(tf, "new")
    no_supervisor_step = variant(
        "1.4.0",
        ("  - trigger: refer_to_supervisor\n", "  - trigger: refer_to_boss\n"),
    )
    report = what_if(
        tf,
        account=ACCOUNT,
        candidate=no_supervisor_step,
        since=SINCE.replace(month=11),
        until=UNTIL,
    )
    refusals = [(r.ticket_id, r.event, r.guard, r.message) for r in report.refused]
    assert refusals == [
        (
            ticket.id,
            "refer_to_supervisor",
            "transition",
            "version 1.4.0 has no trigger 'refer_to_supervisor' from 'admin_executive'",
        )
    ]
    assert report.candidate.tickets == 2  # the history is followed as it happened


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (
            UNTIL,
            SINCE,
            "to: 2026-12-01T00:00:00+00:00 is not after from (2026-12-31T00:00:00+00:00)",
        ),
        (datetime(2026, 12, 1), UNTIL, "from: must carry a UTC offset"),
    ],
)
def test_bad_windows(tf: Tierflow, since: datetime, until: datetime, message: str) -> None:
    with pytest.raises(InputError) as refused:
        what_if(tf, account=ACCOUNT, candidate=V1, since=since, until=until)
    assert str(refused.value).startswith(message)


def test_a_history_the_candidate_cannot_follow_is_listed_not_counted(tf: Tierflow) -> None:
    critical = reach(tf, "new", complexity="low", urgency="critical")
    reach(tf, "new", complexity="low", urgency="high")
    no_critical = variant(
        "1.5.0",
        ("urgency: [low, medium, high, critical]", "urgency: [low, medium, high]"),
        ("  critical: {low: P1, medium: P1, high: P1}\n", ""),
    )
    report = what_if(
        tf, account=ACCOUNT, candidate=no_critical, since=SINCE.replace(month=11), until=UNTIL
    )
    assert report.candidate.not_replayed == [
        {
            "ticket": critical.id,
            "message": "version 1.5.0 has no 'critical' (a state or value this ticket's history "
            "uses)",
        }
    ]
    assert (report.current.tickets, report.candidate.tickets) == (2, 1)
