"""SLA clocks through the engine: the policy's worked cases, stop, pause, breach exactly once,
the breached / at-risk filters and the work queue order. All on an injected clock."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import yaml

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, TECH, TECH_OTHER, new_ticket
from workflow import DefinitionError, Tierflow
from workflow.definition import parse_definition

GMT4 = "-04:00"


def at(local: str) -> datetime:
    """An instant written in the policy's GMT-4."""
    return datetime.fromisoformat(local + GMT4)


@pytest.fixture
def timed(db_url: str, clock: FakeClock) -> Iterator[Tierflow]:
    """The support workflow with resolution targets (the shipped one has none)."""
    data = yaml.safe_load(
        resources.files("workflow.definitions").joinpath("support.yaml").read_text()
    )
    data["sla"]["resolution"]["target_hours"] = {"P1": 4, "P2": 8, "all": 27}
    tf = Tierflow(db_url, clock=clock, definitions=[parse_definition(data)])
    tf.create_account(slug=ACCOUNT, name="Acme")
    yield tf
    tf.db.dispose()


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-11-24T10:00", "2026-11-25T10:00"),  # Tue 10:00 -> Wed 10:00
        ("2026-11-27T17:30", "2026-11-30T17:30"),  # Fri 17:30 -> Mon 17:30
        ("2026-11-28T12:00", "2026-11-30T18:00"),  # Sat 12:00 -> Mon 18:00
        ("2026-11-24T20:00", "2026-11-25T18:00"),  # Tue 20:00 -> Wed 18:00
    ],
)
def test_first_response_worked_cases(
    tf: Tierflow, clock: FakeClock, received: str, due: str
) -> None:
    clock.set(at(received))
    t = new_ticket(tf, TECH)
    fr = t.sla["first_response"]
    assert fr["due_at"] == at(due)
    assert (fr["status"], fr["target_business_seconds"]) == ("running", 9 * 3600)
    # the same, for a ticket imported later with its original received_at
    clock.set(at(received) + timedelta(days=10))
    imported = new_ticket(tf, TECH, received_at=at(received))
    assert imported.sla["first_response"]["due_at"] == at(due)


@pytest.mark.parametrize(
    ("how", "args"),
    [
        ("respond", {"body": "on it", "role": "l1_agent"}),
        ("fire", {"trigger": "request_info", "role": "l1_agent", "note": "which browser?"}),
    ],
)
def test_first_response_stops_on_the_first_response(
    tf: Tierflow, clock: FakeClock, how: str, args: dict[str, Any]
) -> None:
    t = new_ticket(tf, TECH)
    tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    clock.advance(hours=2)
    answered = clock.now
    t = getattr(tf, how)(account=ACCOUNT, ticket_id=t.id, **args)
    fr = t.sla["first_response"]
    assert (fr["status"], fr["stopped_at"], fr["elapsed_business_seconds"]) == (
        "met",
        answered,
        7200,
    )
    assert t.first_response_at == answered
    clock.advance(days=5)
    t = tf.respond(account=ACCOUNT, ticket_id=t.id, body="again", role="l1_agent")
    assert t.sla["first_response"]["stopped_at"] == answered  # the first one counts
    assert t.sla["first_response"]["status"] == "met"


def test_resolve_stops_first_response_and_resolution(timed: Tierflow, clock: FakeClock) -> None:
    t = new_ticket(timed, TECH_OTHER, complexity="high", urgency="high")  # P1: 4 h
    assert t.sla["resolution"]["due_at"] == at("2026-11-24T14:00")
    timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    timed.fire(
        account=ACCOUNT,
        ticket_id=t.id,
        trigger="escalate",
        role="l1_agent",
        data={"channel": "phone"},
    )
    clock.advance(hours=3)
    t = timed.fire(
        account=ACCOUNT, ticket_id=t.id, trigger="resolve", role="l2_specialist", note="fixed"
    )
    assert {k: (v["status"], v["elapsed_business_seconds"]) for k, v in t.sla.items()} == {
        "first_response": ("met", 3 * 3600),
        "resolution": ("met", 3 * 3600),
    }


def test_waiting_on_customer_pauses_resolution(timed: Tierflow, clock: FakeClock) -> None:
    t = new_ticket(timed, TECH, complexity="low", urgency="high")  # P2: 8 h, Tue 10:00
    timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    clock.set(at("2026-11-24T12:00"))
    t = timed.fire(
        account=ACCOUNT,
        ticket_id=t.id,
        trigger="request_info",
        role="l1_agent",
        note="screenshot please",
    )
    res = t.sla["resolution"]
    assert (res["status"], res["due_at"], res["elapsed_business_seconds"]) == ("paused", None, 7200)
    clock.set(at("2026-11-25T12:00"))  # a business day later: still 2 h used
    assert (
        timed.get_ticket(account=ACCOUNT, ticket_id=t.id).sla["resolution"][
            "remaining_business_seconds"
        ]
        == 6 * 3600
    )
    t = timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="customer_replied", role="customer")
    assert (t.sla["resolution"]["status"], t.sla["resolution"]["due_at"]) == (
        "running",
        at("2026-11-25T18:00"),
    )
    assert timed.check() == []


def test_priority_change_moves_the_due_instant(timed: Tierflow, clock: FakeClock) -> None:
    t = new_ticket(timed, TECH)  # no priority: the 'all' target, 27 h = 3 business days
    assert t.sla["resolution"]["due_at"] == at("2026-11-27T10:00")
    clock.advance(hours=1)
    t = timed.update_fields(
        account=ACCOUNT, ticket_id=t.id, role="l1_agent", complexity="high", urgency="critical"
    )  # P1: 4 h
    assert t.sla["resolution"]["due_at"] == at("2026-11-24T14:00")


def test_breach_is_recorded_exactly_once(tf: Tierflow, clock: FakeClock) -> None:
    t = new_ticket(tf, TECH)
    clock.set(at("2026-11-25T09:59"))
    assert tf.scan_sla() == 0
    clock.set(at("2026-11-25T10:00"))
    assert tf.scan_sla() == 1
    assert tf.scan_sla() == 0
    clock.advance(days=1)
    assert tf.scan_sla() == 0
    t = tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    kinds = [(e.kind, e.data, e.actor, e.role) for e in tf.events(account=ACCOUNT, ticket_id=t.id)]
    assert kinds[1:] == [
        ("sla_breached", {"clock": "first_response"}, "sla-scanner", "system"),
        ("transition", {}, None, "l1_agent"),
    ]
    fr = t.sla["first_response"]
    assert (fr["status"], fr["breached_at"]) == ("breached", at("2026-11-25T10:00"))
    t = tf.respond(account=ACCOUNT, ticket_id=t.id, body="sorry for the wait", role="l1_agent")
    assert t.sla["first_response"]["status"] == "breached"  # late is late
    assert tf.check() == []


def test_a_breach_is_recorded_by_the_next_unit_of_work_if_no_scan_ran(
    tf: Tierflow, clock: FakeClock
) -> None:
    t = new_ticket(tf, TECH)
    clock.set(at("2026-11-26T10:00"))
    tf.respond(account=ACCOUNT, ticket_id=t.id, body="late answer", role="l1_agent")
    events = tf.events(account=ACCOUNT, ticket_id=t.id)
    assert [e.kind for e in events] == ["created", "sla_breached", "response"]
    assert tf.scan_sla() == 0


def test_concurrent_scanners_record_each_breach_once(db_url: str, clock: FakeClock) -> None:
    engines = [Tierflow(db_url, clock=clock) for _ in range(3)]
    engines[0].create_account(slug=ACCOUNT, name="Acme")
    ids = [new_ticket(engines[0], TECH).id for _ in range(12)]
    clock.advance(days=3)
    results: list[int] = []
    threads = [threading.Thread(target=lambda e=e: results.append(e.scan_sla())) for e in engines]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert sum(results) == 12
    for tid in ids:
        kinds = [e.kind for e in engines[0].events(account=ACCOUNT, ticket_id=tid)]
        assert kinds.count("sla_breached") == 1
    for e in engines:
        e.db.dispose()


def test_breached_and_at_risk_filters(tf: Tierflow, clock: FakeClock) -> None:
    early = new_ticket(tf, TECH).id  # due Wed 10:00
    clock.set(at("2026-11-24T17:00"))
    late = new_ticket(tf, TECH).id  # due Wed 17:00
    answered = new_ticket(tf, TECH).id
    tf.respond(account=ACCOUNT, ticket_id=answered, body="hello", role="l1_agent")

    def ids(sla: str) -> list[int]:
        return [t.id for t in tf.list_tickets(account=ACCOUNT, sla=sla)[0]]

    clock.set(at("2026-11-25T08:00"))  # early: 8 h used, 1 h left (< 20 %)
    assert (ids("at_risk"), ids("breached")) == ([early], [])
    clock.set(at("2026-11-25T10:00"))
    assert (ids("at_risk"), ids("breached")) == ([], [early])
    clock.set(at("2026-11-25T15:30"))  # late: 1.5 h left of 9
    assert (ids("at_risk"), ids("breached")) == ([late], [early])
    tf.scan_sla()
    assert (ids("at_risk"), ids("breached")) == ([late], [early])


def test_queue_order(tf: Tierflow, clock: FakeClock) -> None:
    def make(complexity: str | None, urgency: str | None) -> int:
        t = new_ticket(tf, TECH, complexity=complexity, urgency=urgency)
        clock.advance(minutes=10)
        return t.id

    p3_old = make("low", "medium")
    p1 = make("high", "high")
    unprioritised = make(None, None)
    p3_new = make("medium", "medium")
    p2 = make("low", "high")
    p1_imported_earlier = new_ticket(
        tf, TECH, complexity="low", urgency="critical", received_at=clock.now - timedelta(days=1)
    ).id
    done = make("high", "critical")
    tf.fire(account=ACCOUNT, ticket_id=done, trigger="cancel", role="customer")
    queue = [t.id for t in tf.queue(account=ACCOUNT)]
    assert queue == [p1_imported_earlier, p1, p2, p3_old, p3_new, unprioritised]
    tf.fire(account=ACCOUNT, ticket_id=p2, trigger="triage", role="l1_agent")
    assert [t.id for t in tf.queue(account=ACCOUNT, level="level1")] == [p2]


@pytest.mark.parametrize(
    ("calendar", "problem"),
    [
        (
            {"hours": {"mon": ["09:00-12:00", "11:00-13:00"]}},
            "calendar.hours: hours.mon: intervals '09:00-12:00' and '11:00-13:00' overlap",
        ),
        (
            {"hours": {"tue": ["18:00-09:00"]}},
            "calendar.hours: hours.tue: interval '18:00-09:00' ends at or before it starts",
        ),
        (
            {"timezone": "Mars/Olympus"},
            "calendar.timezone: timezone: unknown timezone 'Mars/Olympus'; expected an IANA zone "
            "name such as 'America/Santiago' or 'Etc/GMT+4' (= UTC-4, IANA inverts the sign)",
        ),
    ],
)
def test_bad_calendar_fails_validation(calendar: dict[str, Any], problem: str) -> None:
    data = yaml.safe_load(
        resources.files("workflow.definitions").joinpath("support.yaml").read_text()
    )
    broken = copy.deepcopy(data)
    broken["calendar"].update(calendar)
    with pytest.raises(DefinitionError) as info:
        parse_definition(broken)
    assert info.value.problems == [problem]


@pytest.mark.parametrize("pause", [False, True])
def test_a_lower_target_on_a_stopped_or_paused_clock_reports_the_breach(
    timed: Tierflow, clock: FakeClock, pause: bool
) -> None:
    """P4's 27 h resolution target, 5 h used, then the priority rises to P1 (4 h): the clock is
    breached - at the moment the target fell below the time already used."""
    t = new_ticket(timed, TECH, complexity="low", urgency="low")
    timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    clock.advance(hours=5)
    if pause:
        timed.fire(
            account=ACCOUNT,
            ticket_id=t.id,
            trigger="request_info",
            role="l1_agent",
            note="details?",
        )
    else:
        timed.update_fields(
            account=ACCOUNT, ticket_id=t.id, role="l1_agent", complexity="low", urgency="low"
        )
        timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="start_solving", role="l1_agent")
        timed.fire(
            account=ACCOUNT, ticket_id=t.id, trigger="resolve", role="l1_agent", note="fixed"
        )
    changed_at = clock.advance(minutes=1)
    t = timed.update_fields(
        account=ACCOUNT, ticket_id=t.id, role="supervisor", complexity="high", urgency="critical"
    )
    res = t.sla["resolution"]
    assert (res["status"], res["breached_at"], res["remaining_business_seconds"]) == (
        "breached",
        changed_at,
        -3600,
    )
    assert [x.id for x in timed.list_tickets(account=ACCOUNT, sla="breached")[0]] == [t.id]
    assert timed.check() == []


def _pause(tf: Tierflow, tid: int) -> None:
    tf.fire(account=ACCOUNT, ticket_id=tid, trigger="request_info", role="l1_agent", note="?")


def _resume(tf: Tierflow, tid: int) -> None:
    tf.fire(account=ACCOUNT, ticket_id=tid, trigger="customer_replied", role="customer")


def _raise_to_p1(tf: Tierflow, tid: int) -> Any:
    return tf.update_fields(
        account=ACCOUNT, ticket_id=tid, role="supervisor", complexity="high", urgency="critical"
    )


@pytest.mark.parametrize(
    ("how", "used_hours"),
    [
        ("running", 5),  # P4, 5 h used while running, then P1 (4 h)
        ("paused then resumed", 5),  # paused at 5 h, P1 while paused, resumed an hour later
        ("paused exactly at the target then resumed", 4),  # 4 h used of 4 h is breached
    ],
)
def test_a_lowered_target_is_breached_at_the_instant_it_is_lowered(
    timed: Tierflow, clock: FakeClock, how: str, used_hours: int
) -> None:
    t = new_ticket(timed, TECH, complexity="low", urgency="low")  # P4: 27 h, Tue 10:00
    timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    clock.advance(hours=used_hours)
    if how != "running":
        _pause(timed, t.id)
    changed_at = clock.advance(minutes=1)
    t = _raise_to_p1(timed, t.id)
    if how != "running":
        clock.advance(hours=1)
        _resume(timed, t.id)
        t = timed.get_ticket(account=ACCOUNT, ticket_id=t.id)
    res = t.sla["resolution"]
    assert (res["status"], res["breached_at"]) == ("breached", changed_at)
    clock.advance(minutes=1)
    assert timed.scan_sla() == 1
    res = timed.get_ticket(account=ACCOUNT, ticket_id=t.id).sla["resolution"]
    assert (res["status"], res["breached_at"]) == ("breached", changed_at)
    assert [x.id for x in timed.list_tickets(account=ACCOUNT, sla="breached")[0]] == [t.id]
    assert timed.check() == []


def test_pauses_keep_every_microsecond(timed: Tierflow, clock: FakeClock) -> None:
    """Ten pause/resume rounds of 1.9 s each count 19 s, not 10 s."""
    t = new_ticket(timed, TECH, complexity="low", urgency="high")  # P2: 8 h, Tue 10:00
    timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    clock.advance(hours=1)
    for _ in range(10):
        _pause(timed, t.id)
        clock.advance(seconds=1.9)  # paused: does not count
        _resume(timed, t.id)
        clock.advance(seconds=1.9)  # running: counts
    _pause(timed, t.id)
    res = timed.get_ticket(account=ACCOUNT, ticket_id=t.id).sla["resolution"]
    assert (res["status"], res["elapsed_business_seconds"]) == ("paused", 3600 + 19.0)
    assert res["remaining_business_seconds"] == 8 * 3600 - 3600 - 19.0
    assert timed.check() == []


def test_a_fraction_of_a_second_over_the_target_is_a_breach(
    timed: Tierflow, clock: FakeClock
) -> None:
    """28,800.3 s used of an 8 h target: breached at the due instant, not met with 1 s left."""
    t = new_ticket(timed, TECH, complexity="low", urgency="high")  # P2: 8 h, Tue 10:00
    timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="start_solving", role="l1_agent")
    assert t.sla["resolution"]["due_at"] == at("2026-11-24T18:00")
    clock.set(at("2026-11-25T09:00") + timedelta(seconds=0.3))
    t = timed.fire(account=ACCOUNT, ticket_id=t.id, trigger="resolve", role="l1_agent", note="x")
    res = t.sla["resolution"]
    assert (res["status"], res["breached_at"], res["elapsed_business_seconds"]) == (
        "breached",
        at("2026-11-24T18:00"),
        28_800.3,
    )
    assert res["remaining_business_seconds"] == -0.3
    assert timed.check() == []


def test_clock_state_rows_with_whole_seconds_still_load() -> None:
    from workflow.sla import ClockState

    old = {
        "target_s": 3600,
        "elapsed_s": 1800,
        "running_since": None,
        "stopped_at": "2026-11-24T14:00:00+00:00",
        "due_at": None,
        "breached_at": None,
        "breach_recorded": False,
    }
    state = ClockState.from_json(old)
    assert state.elapsed == timedelta(seconds=1800)
    exact = ClockState.from_json({**state.to_json()})
    assert exact == state and state.to_json()["elapsed_us"] == 1_800_000_000
    assert state.to_json()["elapsed_s"] == 1800


def test_queue_lists_breached_tickets_first_most_overdue_first(
    tf: Tierflow, clock: FakeClock
) -> None:
    """Within a priority: breached (recorded or past due), most overdue first; then by due
    instant; then tickets without one, by age. First response: 9 business hours."""

    def make(urgency: str, received: str) -> int:
        return new_ticket(tf, TECH, complexity="low", urgency=urgency, received_at=at(received)).id

    clock.set(at("2026-11-24T12:30"))
    recorded = make("medium", "2026-11-24T10:00")  # P3, due Wed 10:00; scanned below
    due_11 = make("medium", "2026-11-24T11:00")  # P3, due Wed 11:00
    p2 = make("high", "2026-11-24T12:30")  # P2, due Wed 12:30
    clock.set(at("2026-11-25T10:30"))
    assert tf.scan_sla() == 1  # `recorded`: breach recorded at Wed 10:00, due instant cleared
    past_due = make("medium", "2026-11-24T09:00")  # P3, due Wed 09:00: already past
    fresh = make("medium", "2026-11-25T10:30")  # P3, due Thu 10:30
    answered = make("medium", "2026-11-25T10:15")  # P3, answered in time: no due instant
    older_no_due = make("medium", "2026-11-25T10:00")  # the same, 15 minutes older
    for tid in (answered, older_no_due):
        tf.respond(account=ACCOUNT, ticket_id=tid, body="hello", role="l1_agent")

    queue = [t.id for t in tf.queue(account=ACCOUNT)]
    assert queue == [p2, past_due, recorded, due_11, fresh, older_no_due, answered]
    # a page ends exactly where the limit says, in the same order
    assert [t.id for t in tf.queue(account=ACCOUNT, limit=3)] == queue[:3]
    assert [t.id for t in tf.queue(account=ACCOUNT, limit=2)] == queue[:2]


def test_at_risk_includes_paused_clocks_with_little_time_left(
    timed: Tierflow, clock: FakeClock
) -> None:
    """`?sla=at_risk` is about time left: a paused clock with at most 20 % of its target left
    is at risk (when the customer replies, that is all the team has); with more left it is not."""

    def at_risk() -> list[int]:
        return [t.id for t in timed.list_tickets(account=ACCOUNT, sla="at_risk")[0]]

    little = new_ticket(timed, TECH, complexity="low", urgency="high").id  # P2: 8 h, Tue 10:00
    plenty = new_ticket(timed, TECH, complexity="low", urgency="high").id
    for tid in (little, plenty):
        timed.fire(account=ACCOUNT, ticket_id=tid, trigger="triage", role="l1_agent")
    clock.set(at("2026-11-24T12:00"))
    _pause(timed, plenty)  # 2 h used, 6 h left
    clock.set(at("2026-11-24T16:30"))
    _pause(timed, little)  # 6.5 h used, 1.5 h left (18.75 %)
    assert at_risk() == [little]
    clock.set(at("2026-11-25T12:00"))  # a night and a morning later, still paused
    assert at_risk() == [little]
    assert timed.list_tickets(account=ACCOUNT, sla="breached")[0] == []
    for tid in (little, plenty):
        _resume(timed, tid)
    assert at_risk() == [little]  # running again with 1.5 h left
    clock.set(at("2026-11-25T13:30"))  # little's 8 h are used up: breached, not at risk
    assert at_risk() == []
    assert timed.check() == []
