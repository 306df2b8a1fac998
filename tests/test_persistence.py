"""Persistence promises: history replays to the stored ticket, refusals write nothing, versions
are compare-and-set, idempotency keys return the first answer, old definitions keep working."""

from __future__ import annotations

import copy
import threading
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from api.cli import main as cli
from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, ADMIN_B, PATHS, TECH, new_ticket, reach, run_steps
from workflow import (
    Forbidden,
    GuardFailed,
    Idempotency,
    IdempotencyMismatch,
    InputError,
    NotFound,
    Tierflow,
    VersionMismatch,
)
from workflow.definition import parse_definition
from workflow.models import Ticket, TicketEvent

T = Ticket.__table__  # type: ignore[attr-defined]
E = TicketEvent.__table__  # type: ignore[attr-defined]


def _counts(tf: Tierflow) -> tuple[int, int]:
    with tf.db.read() as conn:
        tickets = conn.execute(sa.select(sa.func.count()).select_from(T)).scalar_one()
        events = conn.execute(sa.select(sa.func.count()).select_from(E)).scalar_one()
    return int(tickets), int(events)


def test_every_path_replays_to_the_stored_ticket(tf: Tierflow, clock: FakeClock) -> None:
    for path in PATHS:
        reach(tf, path)
        clock.advance(hours=5)
    t = reach(tf, "l2_solving")
    clock.advance(days=2)
    tf.fire(
        account=ACCOUNT,
        ticket_id=t.id,
        trigger="request_info",
        role="l2_specialist",
        note="logs please",
    )
    clock.advance(days=3)
    tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="customer_replied", role="customer")
    tf.respond(account=ACCOUNT, ticket_id=t.id, body="looking into it", role="l2_specialist")
    assert tf.scan_sla() >= 1
    assert tf.check() == []


def test_check_finds_a_ticket_that_disagrees_with_its_history(tf: Tierflow) -> None:
    t = reach(tf, "l2_solving")
    other = reach(tf, "l1_triage")
    with tf.db.write() as conn:
        conn.execute(sa.update(T).where(T.c.number == t.id).values(state="l3_solution"))
        key = sa.select(T.c.id).where(T.c.number == other.id).scalar_subquery()
        conn.execute(sa.delete(E).where(E.c.ticket_id == key, E.c.seq == 1))
    assert tf.check() == [
        "state counts: account 1 support l2_solving: stored (tickets, breached) (1, 0) != "
        "counted (0, 0)",
        "state counts: account 1 support l3_solution: stored (tickets, breached) (0, 0) != "
        "counted (1, 0)",
        f"ticket {t.id} of {ACCOUNT}: state stored 'l3_solution' != replayed 'l2_solving'",
        f"ticket {other.id} of {ACCOUNT}: event seq [2] is not 1..1",
    ]


def test_check_command(tf: Tierflow, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    t = reach(tf, "resolved")
    reach(tf, "l1_triage")
    where = sa.make_url(db_url).render_as_string(hide_password=True)
    assert cli(["--database-url", db_url, "check"]) == 0
    assert capsys.readouterr().out == (
        f"check: {where}: 2 ticket(s); every history replays to its stored state\n"
    )
    with tf.db.write() as conn:
        conn.execute(sa.update(T).where(T.c.number == t.id).values(outcome="unsolvable"))
    assert cli(["--database-url", db_url, "check"]) == 1
    assert capsys.readouterr().err == (
        f"ticket {t.id} of {ACCOUNT}: outcome stored 'unsolvable' != replayed 'solved'\n"
        f"check: {where}: 1 problem(s) in 2 ticket(s)\n"
    )


CREATE_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"kind": "hardware"}, "kind: unknown kind 'hardware' (known: technical, administrative)"),
    (
        {"category": "pricing"},
        "category: unknown technical category 'pricing' (known: "
        "login_password, wrong_data, agenda_display, service_config, resource_schedule_config, "
        "booking_site_config, email_reception, other)",
    ),
    (
        {"channel": "fax"},
        "channel: unknown channel 'fax' (known: chat, help_center, phone, video, email)",
    ),
    ({"urgency": "asap"}, "urgency: unknown urgency 'asap' (known: low, medium, high, critical)"),
    (
        {"complexity": "extreme"},
        "complexity: unknown complexity 'extreme' (known: low, medium, high)",
    ),
    ({"subject": "  "}, "subject: must not be empty"),
    (
        {"received_at": datetime(2026, 11, 24, 9, 0)},
        "received_at: must carry a UTC offset (ISO 8601 with offset)",
    ),
    (
        {"received_at": datetime.fromisoformat("2026-11-24T14:00:01+00:00")},
        "received_at: 2026-11-24T14:00:01+00:00 is in the future",
    ),
]


@pytest.mark.parametrize(("override", "message"), CREATE_ERRORS)
def test_bad_ticket_input_names_the_field_and_writes_nothing(
    tf: Tierflow, override: dict[str, Any], message: str
) -> None:
    fields = {**TECH, "subject": "Cannot log in"}
    fields.update(override)
    with pytest.raises(InputError) as info:
        tf.create_ticket(account=ACCOUNT, **fields)
    assert info.value.detail == message
    assert info.value.field == message.split(":")[0]
    assert _counts(tf) == (0, 0)


def test_imported_ticket_keeps_when_it_was_received(tf: Tierflow, clock: FakeClock) -> None:
    earlier = clock.now - timedelta(days=1)
    t = new_ticket(tf, TECH, received_at=earlier)
    assert (t.received_at, t.created_at) == (earlier, clock.now)


def test_unknown_account_and_ticket_and_other_accounts_tickets(tf: Tierflow) -> None:
    tf.create_account(slug="globex", name="Globex")
    theirs = tf.create_ticket(account="globex", subject="x", **TECH)
    with pytest.raises(NotFound) as info:
        tf.get_ticket(account="initech", ticket_id=1)
    assert info.value.detail == "account 'initech' not found"
    for call in (
        lambda: tf.get_ticket(account=ACCOUNT, ticket_id=theirs.id),
        lambda: tf.events(account=ACCOUNT, ticket_id=theirs.id),
        lambda: tf.fire(account=ACCOUNT, ticket_id=theirs.id, trigger="triage", role="admin"),
        lambda: tf.explain(account=ACCOUNT, ticket_id=theirs.id, role="admin"),
        lambda: tf.get_ticket(account=ACCOUNT, ticket_id=9999),
    ):
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.detail in (f"ticket {theirs.id} not found", "ticket 9999 not found")
    assert tf.list_tickets(account=ACCOUNT)[0] == []
    assert tf.get_ticket(account="globex", ticket_id=theirs.id).version == 1


def test_duplicate_account_and_bad_slug(tf: Tierflow) -> None:
    with pytest.raises(InputError) as info:
        tf.create_account(slug="acme", name="Again")
    assert info.value.detail == "slug: account 'acme' already exists"
    with pytest.raises(InputError) as info:
        tf.create_account(slug="Not A Slug", name="x")
    assert info.value.detail == "slug: use lowercase letters, digits, '-' or '_'"


def test_staff_only_operations(tf: Tierflow) -> None:
    t = reach(tf, "l1_triage")
    with pytest.raises(Forbidden) as info:
        tf.respond(account=ACCOUNT, ticket_id=t.id, body="hi", role="customer")
    assert info.value.detail == (
        "role 'customer' may not respond to the customer (allowed: executive, l1_agent, "
        "l2_specialist, l3_engineer, supervisor)"
    )
    with pytest.raises(Forbidden):
        tf.update_fields(account=ACCOUNT, ticket_id=t.id, role="integration", urgency="high")
    with pytest.raises(InputError) as info2:
        tf.update_fields(account=ACCOUNT, ticket_id=t.id, role="l1_agent")
    assert info2.value.detail == "body: nothing to update: give complexity, urgency or category"
    assert tf.get_ticket(account=ACCOUNT, ticket_id=t.id).version == t.version


def test_expected_version_is_compare_and_set(tf: Tierflow) -> None:
    t = reach(tf, "l1_triage")
    tf.update_fields(
        account=ACCOUNT, ticket_id=t.id, role="l1_agent", urgency="high", expected_version=t.version
    )
    with pytest.raises(VersionMismatch) as info:
        tf.update_fields(
            account=ACCOUNT,
            ticket_id=t.id,
            role="l1_agent",
            complexity="low",
            expected_version=t.version,
        )
    assert (info.value.expected, info.value.current) == (t.version, t.version + 1)
    assert info.value.detail == (
        f"ticket is at version {t.version + 1}, not {t.version}: reload it and decide again"
    )


def test_idempotency_key_returns_the_first_answer(tf: Tierflow, clock: FakeClock) -> None:
    t = reach(tf, "l1_triage")
    key = Idempotency.of("req-1", "request_info", "what browser?")
    first = tf.fire(
        account=ACCOUNT,
        ticket_id=t.id,
        trigger="request_info",
        role="l1_agent",
        note="what browser?",
        idempotency=key,
    )
    clock.advance(hours=1)
    tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="customer_replied", role="customer")
    again = tf.fire(
        account=ACCOUNT,
        ticket_id=t.id,
        trigger="request_info",
        role="l1_agent",
        note="what browser?",
        idempotency=key,
    )
    assert again.replayed and not first.replayed
    assert (again.state, again.version, again.updated_at, again.sla) == (
        first.state,
        first.version,
        first.updated_at,
        first.sla,
    )
    assert again.current == first.current
    assert len(tf.events(account=ACCOUNT, ticket_id=t.id)) == first.version + 1
    with pytest.raises(IdempotencyMismatch) as info:
        tf.fire(
            account=ACCOUNT,
            ticket_id=t.id,
            trigger="request_info",
            role="l1_agent",
            note="something else",
            idempotency=Idempotency.of("req-1", "other"),
        )
    assert info.value.detail == (
        "Idempotency-Key 'req-1' was already used for a different request; "
        "use a new key for a new request"
    )


def test_idempotent_ticket_creation(tf: Tierflow) -> None:
    key = Idempotency.of("create-1", TECH)
    a = tf.create_ticket(account=ACCOUNT, subject="s", idempotency=key, **TECH)
    b = tf.create_ticket(account=ACCOUNT, subject="s", idempotency=key, **TECH)
    assert (a.id, a.version) == (b.id, b.version)
    assert _counts(tf) == (1, 1)


def test_concurrent_fires_land_once_each(tf: Tierflow) -> None:
    """8 threads race to move the same tickets; each success is one event, nothing is lost."""
    tickets = [reach(tf, "l1_solving").id for _ in range(3)]
    successes: list[tuple[int, int]] = []
    refusals: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(12):
            tid = tickets[(n + i) % len(tickets)]
            try:
                step = ("request_info", "l1_agent", "more info")
                view = tf.get_ticket(account=ACCOUNT, ticket_id=tid)
                if view.state == "waiting_on_customer":
                    step = ("customer_replied", "customer", None)
                v = tf.fire(
                    account=ACCOUNT, ticket_id=tid, trigger=step[0], role=step[1], note=step[2]
                )
                with lock:
                    successes.append((tid, v.version))
            except Exception as exc:  # InvalidTransition when another thread moved it first
                with lock:
                    refusals.append(type(exc).__name__)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert set(refusals) <= {"InvalidTransition"}
    assert len(successes) == len(set(successes))  # every success saw its own version
    for tid in tickets:
        events = tf.events(account=ACCOUNT, ticket_id=tid)
        fired = [e for e in events if e.kind == "transition"]
        assert len(fired) == 2 + sum(1 for s in successes if s[0] == tid)
    assert tf.check() == []


def test_old_definition_version_keeps_serving_its_tickets(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    tf.create_account(slug=ACCOUNT, name="Acme")
    old = reach(tf, "resolved")
    data = yaml.safe_load(
        resources.files("workflow.definitions").joinpath("support.yaml").read_text()
    )
    changed = copy.deepcopy(data)
    changed["version"] = "1.1.0"
    changed["reopen_window_days"] = 1
    tf.db.dispose()

    v2 = parse_definition(changed)
    clock.advance(hours=1)
    tf2 = Tierflow(db_url, clock=clock, definitions=[v2])
    clock.advance(days=3)
    new = reach(tf2, "resolved")
    assert (new.workflow_version, old.workflow_version) == ("1.1.0", "1.0.0")
    # the old ticket still runs on 1.0.0 (7-day window), loaded from the stored source
    assert (
        tf2.fire(account=ACCOUNT, ticket_id=old.id, trigger="reopen", role="customer").state
        == "l1_solving"
    )
    clock.advance(days=2)
    with pytest.raises(GuardFailed):
        tf2.fire(account=ACCOUNT, ticket_id=new.id, trigger="reopen", role="customer")
    assert [v for v, _h, _at in tf2.versions("support")] == ["1.1.0", "1.0.0"]
    assert tf2.definition("support", "1.0.0").hash == old.definition_hash
    assert tf2.check() == []
    tf2.db.dispose()


def test_admin_b_scenario_events(tf: Tierflow) -> None:
    t = new_ticket(tf, ADMIN_B)
    run_steps(
        tf,
        t.id,
        [
            ("take", "executive", None, None),
            ("refer_to_supervisor", "executive", None, None),
            ("resolve", "supervisor", "refund approved", None),
            ("close", "customer", None, None),
        ],
    )
    events = tf.events(account=ACCOUNT, ticket_id=t.id)
    assert [(e.seq, e.kind, e.trigger, e.from_state, e.to_state) for e in events] == [
        (1, "created", None, None, "new"),
        (2, "transition", "take", "new", "admin_executive"),
        (3, "transition", "refer_to_supervisor", "admin_executive", "admin_supervisor"),
        (4, "transition", "resolve", "admin_supervisor", "resolved"),
        (5, "transition", "close", "resolved", "closed"),
    ]
    assert events[2].changes == {"channel": "email"}
    assert events[3].note == "refund approved"


@pytest.mark.parametrize(("days", "closed"), [(6.99, False), (7, True)])
def test_auto_close_after_the_reopen_window(
    tf: Tierflow, clock: FakeClock, days: float, closed: bool
) -> None:
    resolved = reach(tf, "resolved")
    reopened = reach(tf, "resolved")
    tf.fire(account=ACCOUNT, ticket_id=reopened.id, trigger="reopen", role="customer")
    clock.advance(days=days)
    assert tf.close_expired() == int(closed)
    t = tf.get_ticket(account=ACCOUNT, ticket_id=resolved.id)
    assert t.state == ("closed" if closed else "resolved")
    assert tf.get_ticket(account=ACCOUNT, ticket_id=reopened.id).state == "l1_solving"
    if closed:
        last = tf.events(account=ACCOUNT, ticket_id=resolved.id)[-1]
        assert (last.trigger, last.actor, last.role, last.note) == (
            "close",
            "auto-close",
            "system",
            "closed automatically after 7 days in resolved",
        )
        assert tf.close_expired() == 0
    assert tf.check() == []


def test_only_one_background_runner_at_a_time(tf: Tierflow) -> None:
    with tf.db.exclusive("tierflow:auto-close") as first:
        assert first
        with tf.db.exclusive("tierflow:auto-close") as second:
            assert not second
        assert tf.close_expired() == 0  # somebody else is running it
    with tf.db.exclusive("tierflow:auto-close") as again:
        assert again
