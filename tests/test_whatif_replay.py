"""The what-if replay (raw rows, a mutable record per ticket, batches by id range) answers
exactly what the reference fold answers: :func:`workflow.history.apply` - the fold live tickets
are written with - over each ticket's events read through SQLAlchemy, one frozen ticket per
event. Compared field by field, ticket by ticket, over generated histories: pauses, priority
changes, responses, playbook steps, assignments, recorded breaches, a migration to another
version, candidates with other calendars (holidays, daylight-saving changes), other targets,
stricter guards and values a history uses but a candidate lacks."""

from __future__ import annotations

import contextlib
import functools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, LOGIN_STEPS
from tests.variants import PLAN_GUARD, SANTIAGO, variant
from workflow import Definition, Tierflow, TierflowError, builtin_definitions
from workflow.history import TICKET_FIELDS, TicketState, apply
from workflow.machine import ADMIN, machine_for
from workflow.records import E, T, record_of, state_of
from workflow.whatif import Refusal, Replayed, Row, _judge, _replayed, what_if

V1 = builtin_definitions()[0]
START = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
"""Monday 2 March 2026: the histories run over New York's spring-forward (8 March) and
Santiago's fall-back (5 April, after Good Friday 3 April, a holiday in Chile)."""
TARGETS = (
    (
        "    target_hours: {all: 9}\n",
        "    target_hours: {P1: 2, P2: 4.5, all: 9}\n",
    ),
    ("    target_hours: {}\n", "    target_hours: {P1: 8, P2: 16, all: 30}\n"),
)
NEW_YORK = (
    "  timezone: Etc/GMT+4       # the policy's GMT-4 (IANA inverts the sign)",
    "  timezone: America/New_York\n  holiday_country: US",
)
# triage taken from Level 1 agents, and only with a note
TRIAGE = (
    "    dest: l1_triage\n    roles: [l1_agent]\n    guards:\n",
    "    dest: l1_triage\n    roles: [l2_specialist]\n    guards:\n"
    "      - {name: note_given, args: {purpose: the triage finding}}\n",
)
# the version half the tickets migrate to: Santiago's calendar, targets on both clocks
MIGRATED_TO = variant("1.1.0", SANTIAGO, *TARGETS)
CANDIDATES = {
    "itself": V1,
    "santiago, targets": variant("2.0.0", SANTIAGO, *TARGETS),
    "new york, targets, stricter triage": variant("2.1.0", NEW_YORK, PLAN_GUARD, TRIAGE, *TARGETS),
    "no critical urgency": variant(
        "2.2.0",
        ("urgency: [low, medium, high, critical]", "urgency: [low, medium, high]"),
        ("  critical: {low: P1, medium: P1, high: P1}\n", ""),
        *TARGETS,
    ),
}
TICKETS = 36
FIELDS = [
    {"kind": "technical", "category": "login_password", "channel": "chat"},
    {"kind": "technical", "category": "other", "channel": "email"},
    {"kind": "administrative", "category": "pricing", "channel": "chat"},
    {"kind": "administrative", "category": "payments", "channel": "phone"},
]
LEVELS = [None, "low", "medium", "high"]
URGENCIES = [None, "low", "medium", "high", "critical"]


def _act(tf: Tierflow, rng: random.Random, ticket_id: int) -> None:
    """One random thing a team does to the ticket (the engine may refuse it: then nothing)."""
    view = tf.get_ticket(account=ACCOUNT, ticket_id=ticket_id)
    d = tf.registry.by_hash(view.definition_hash)
    action = rng.choice(["fire"] * 5 + ["respond", "comment", "fields", "step", "assign"])
    if view.state == "l1_solving" and rng.random() < 0.6:
        action = "step"
    if action == "fire":
        choices = sorted(d.by_state.get(view.state, {}).items())
        if not choices:
            return
        trigger, t = rng.choice(choices)
        tf.fire(
            account=ACCOUNT,
            ticket_id=ticket_id,
            trigger=trigger,
            role=rng.choice(sorted(t.roles)),
            note=rng.choice([None, "noted"]),
            data={"approach": rng.choice(["best", "custom"]), "channel": "chat"},
        )
    elif action == "respond":
        tf.respond(account=ACCOUNT, ticket_id=ticket_id, body="on it", role="l1_agent")
    elif action == "comment":
        tf.comment(account=ACCOUNT, ticket_id=ticket_id, body="hm", role="l1_agent")
    elif action == "fields":
        tf.update_fields(
            account=ACCOUNT,
            ticket_id=ticket_id,
            role="l1_agent",
            complexity=rng.choice(LEVELS[1:]),
            urgency=rng.choice(URGENCIES[1:]),
        )
    elif action == "step":
        tf.record_playbook_step(
            account=ACCOUNT,
            ticket_id=ticket_id,
            step=LOGIN_STEPS[min(view.playbook_position, len(LOGIN_STEPS) - 1)],
            outcome=rng.choice(["failed", "solved"]),
            role="l1_agent",
        )
    else:
        tf.assign(account=ACCOUNT, ticket_id=ticket_id, assignee_id=None, role="l1_agent")


def _histories(tf: Tierflow, clock: FakeClock, seed: int) -> None:
    """TICKETS tickets, interleaved in time, each acted on at random instants; half way the
    open ones migrate to MIGRATED_TO (new ones start on it), and breaches are recorded."""
    rng = random.Random(seed)
    clock.set(START)
    tf.publish(MIGRATED_TO)
    tf.create_account(slug="other", name="Interleaved")  # its tickets sit between ours
    for account in (ACCOUNT, "other"):
        tf.choose_workflow(account=account, workflow="support", version="1.0.0")
    ids: list[int] = []
    for n in range(TICKETS):
        clock.advance(minutes=rng.randint(0, 600))
        fields = rng.choice(FIELDS)
        complexity, urgency = rng.choice(LEVELS), rng.choice(URGENCIES)
        for account in ("other", ACCOUNT):
            t = tf.create_ticket(
                account=account,
                subject="s",
                kind=fields["kind"],
                category=fields["category"],
                channel=fields["channel"],
                complexity=complexity,
                urgency=urgency,
            )
        ids.append(t.id)
        for ticket_id in rng.sample(ids, min(len(ids), 4)):
            clock.advance(minutes=rng.randint(0, 900))
            for _ in range(rng.randint(1, 3)):
                with contextlib.suppress(TierflowError):  # refused live: nothing happened
                    _act(tf, rng, ticket_id)
        if n % 5 == 4:
            tf.scan_sla()
        if n == TICKETS // 2:
            report = tf.migrate(
                account=ACCOUNT,
                workflow="support",
                from_version="1.0.0",
                to_version="1.1.0",
                dry_run=False,
                role=ADMIN,
            )
            assert report.moved > 0
            tf.choose_workflow(account=ACCOUNT, workflow="support", version="1.1.0")
    clock.advance(days=2)


def _reference(
    tf: Tierflow, candidate: Definition, ticket_id: int, number: int
) -> tuple[Any, str | None, list[Refusal], list[TicketState]]:
    """What the what-if answered before its replay was rewritten: each event read through
    SQLAlchemy and folded by ``apply`` into a new frozen ticket."""
    with tf.db.read() as conn:
        rows = conn.execute(
            sa.select(E)
            .where(E.c.ticket_id == ticket_id, E.c.kind != "sla_breached")
            .order_by(E.c.seq)
        ).mappings()
        events = [(r["seq"], r["role"], r["note"], record_of(r)) for r in rows]
    machine = machine_for(candidate)
    ticket: TicketState | None = None
    refused: list[Refusal] = []
    views: list[TicketState] = []
    try:
        for seq, role, note, event in events:
            if event.kind == "transition" and ticket is not None:
                seen = ticket
                views.append(seen)
                refused += [
                    Refusal(number, seq, event.at, event.trigger or "", event.from_state, g, m)
                    for g, m in _judge(
                        candidate,
                        machine,
                        seen.state,
                        functools.partial(_same, seen),
                        event,
                        role,
                        note,
                    )
                ]
            before = candidate if event.kind == "migrated" else None
            ticket = apply(candidate, ticket, event, before=before, summary=False)
        if ticket is None:
            raise ValueError("no events")
    except (KeyError, ValueError) as exc:
        return (type(exc), str(exc)), None, refused, views
    return ticket.sla.clocks, ticket.priority, refused, views


def _same(ticket: TicketState) -> TicketState:
    return ticket


def _stored(tf: Tierflow, ticket_id: int) -> Row:
    with tf.db.read() as conn:
        row = conn.execute(sa.select(T).where(T.c.id == ticket_id)).mappings().one()
    ticket = state_of(row)
    return Row(ticket_id, row["number"], row["definition_hash"], ticket.priority, ticket.sla.clocks)


def _outcome(replayed: Replayed) -> Any:
    if isinstance(replayed.outcome, Exception):
        return (type(replayed.outcome), str(replayed.outcome))
    return replayed.outcome


@pytest.mark.parametrize("seed", [14, 1414])
def test_the_replay_equals_the_reference_fold_ticket_by_ticket(
    tf: Tierflow, clock: FakeClock, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _histories(tf, clock, seed)
    monkeypatch.setattr("workflow.whatif.BATCH", 7)  # batches end inside the data
    since, until = START - timedelta(days=1), clock() + timedelta(days=1)
    account_id = tf.account_id(ACCOUNT)
    with tf.db.read() as conn:
        ours = [
            r[0]
            for r in conn.execute(
                sa.select(T.c.id).where(T.c.account_id == account_id).order_by(T.c.id)
            )
        ]
        kinds = {r[0] for r in conn.execute(sa.select(E.c.kind).distinct())}
        states = {r[0] for r in conn.execute(sa.select(E.c.to_state).distinct())}
    # the histories hold what the replay must get right
    assert {"migrated", "sla_breached", "field_update", "response", "playbook_step"} <= kinds
    assert "waiting_on_customer" in states  # a paused resolution clock
    assert len(ours) == TICKETS
    seen: dict[str, tuple[int, int, int]] = {}
    guards: set[str] = set()
    for label, candidate in CANDIDATES.items():
        views: list[TicketState] = []

        def judge(*args: Any, views: list[Any] = views) -> list[tuple[str, str]]:
            views.append(args[3]())  # the ticket guards would read
            return _judge(*args)

        monkeypatch.setattr("workflow.whatif._judge", judge)
        replayed = list(_replayed(tf.db, candidate, ours))
        monkeypatch.setattr("workflow.whatif._judge", _judge)
        assert [row.id for row, _ in replayed] == ours, label
        refusals = not_followed = clocks = 0
        for row, fast in replayed:
            assert row == _stored(tf, row.id)
            outcome, priority, refused, seen_by_guards = _reference(
                tf, candidate, row.id, row.number
            )
            assert views[: len(seen_by_guards)] == seen_by_guards
            del views[: len(seen_by_guards)]
            guards |= {r.guard for r in refused}
            assert (_outcome(fast), fast.priority, fast.refused) == (outcome, priority, refused), (
                label,
                row.id,
            )
            refusals += len(refused)
            not_followed += isinstance(fast.outcome, Exception)
            clocks += 0 if isinstance(fast.outcome, Exception) else len(fast.outcome)
        seen[label] = (refusals, not_followed, clocks)
    # every candidate was exercised on what it changes
    assert seen["no critical urgency"][1] > 0
    assert seen["new york, targets, stricter triage"][0] > seen["itself"][0]
    assert {"role", "note_given"} <= guards
    assert views == []
    assert all(c > 0 for _, _, c in seen.values())
    # and the answer is the reference's, counted the same way
    report = what_if(
        tf, account=ACCOUNT, candidate=CANDIDATES["santiago, targets"], since=since, until=until
    )
    assert report.candidate.tickets + len(report.candidate.not_replayed) == TICKETS


def test_the_mutable_record_has_every_field_of_a_ticket() -> None:
    from workflow.whatif import _Ticket

    assert tuple(_Ticket.__annotations__) == TICKET_FIELDS == _Ticket.__slots__


def test_parts_in_other_processes_answer_the_same(
    tf: Tierflow,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A big window is split: parts replayed by other interpreters, merged in ticket order -
    the same answer, to the refusals listed; a part another process fails is done here."""
    _histories(tf, clock, 7)
    since, until = START - timedelta(days=1), clock() + timedelta(days=1)
    candidate = CANDIDATES["new york, targets, stricter triage"]
    monkeypatch.setattr("workflow.whatif.MAX_REFUSALS", 3)  # the list is cut across parts
    alone = what_if(tf, account=ACCOUNT, candidate=candidate, since=since, until=until)
    assert alone.refused_total > 3
    monkeypatch.setattr("workflow.whatif.PARALLEL_FROM", 1)
    monkeypatch.setattr("workflow.whatif.os.cpu_count", lambda: 3)  # this one and two others
    parts = what_if(tf, account=ACCOUNT, candidate=candidate, since=since, until=until)
    assert not [r for r in caplog.records if "another process" in r.getMessage()]
    assert parts.to_dict() == alone.to_dict()
    monkeypatch.setattr("workflow.whatif.sys.executable", "/bin/false")
    redone = what_if(tf, account=ACCOUNT, candidate=candidate, since=since, until=until)
    assert redone.to_dict() == alone.to_dict()
    failed = [r for r in caplog.records if "another process" in r.getMessage()]
    assert len(failed) == 2
