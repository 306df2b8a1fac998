"""Each guard as a plain sentence without a ticket (what the designer page shows for a state's
transitions), worded like the reason the same guard gives when it refuses a ticket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api_client import ADMIN_TOKEN, Api
from tests.conftest import FakeClock
from workflow import TicketState, Tierflow, builtin_definitions
from workflow.definition import GuardRef
from workflow.guards import REGISTRY, GuardContext, sentence
from workflow.sla import SlaFields

SUPPORT = next(d for d in builtin_definitions() if d.name == "support")
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TICKET = TicketState(
    kind="technical",
    category="login_password",
    channel="phone",
    complexity=None,
    urgency="high",
    priority=None,
    state="l1_solving",
    level="level1",
    previous_state="l1_triage",
    playbook_position=1,
    outcome=None,
    received_at=NOW - timedelta(days=10),
    state_entered_at=NOW - timedelta(days=9),
    first_response_at=None,
    resolved_at=None,
    version=3,
    sla=SlaFields.EMPTY,
)

# guard, its args, the ticket fields and request data that make it refuse, the sentence, the
# refusal, and the words both say
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str, str, str]] = [
    (
        "kind_is",
        {"kind": "administrative"},
        {},
        {},
        "this trigger is for administrative tickets",
        "ticket is technical, this trigger is for administrative tickets",
        "this trigger is for administrative tickets",
    ),
    (
        "channel_allowed",
        {"level": "level1"},
        {},
        {},
        "the channel must be one served at level1 (chat, help_center)",
        "channel 'phone' is not served at level1 (allowed: chat, help_center)",
        "served at level1",
    ),
    (
        "priority_known",
        {},
        {},
        {},
        "the priority must be known: complexity and urgency set",
        "priority unknown: set complexity first",
        "complexity",
    ),
    (
        "category_level",
        {"level": "level2"},
        {},
        {},
        "the category must be handled at level2",
        "category 'login_password' is handled at level1, not level2",
        "handled at level",
    ),
    (
        "category_beyond",
        {"level": "level1"},
        {},
        {},
        "the category must not be in the level1 catalogue "
        "(one that is works through its playbook first: start_solving)",
        "category 'login_password' is in the level1 catalogue: "
        "work through its playbook first (start_solving)",
        "the level1 catalogue",
    ),
    (
        "channel_moved_to",
        {"level": "level1"},
        {},
        {},
        "the conversation must be on a level1 channel (chat, help_center), "
        "or data.channel must move it to one",
        "channel 'phone' is not served at level1: give data.channel to move "
        "the conversation to a level1 channel (chat, help_center)",
        "level1 channel (chat, help_center)",
    ),
    (
        "data_channel",
        {"level": "level2"},
        {},
        {},
        "data.channel is required: choose the level2 channel (chat, phone, video)",
        "data.channel is required: choose the level2 channel (chat, phone, video)",
        "data.channel is required: choose the level2 channel (chat, phone, video)",
    ),
    (
        "playbook_exhausted",
        {},
        {},
        {},
        "every step of the category's playbook must be tried in order before escalating",
        "playbook step 2 of 4 (check_lockout: Check for a lockout after failed attempts and "
        "lift it) not tried yet; every step must be tried in order before escalating",
        "must be tried in order before escalating",
    ),
    (
        "note_given",
        {"purpose": "what the customer must provide"},
        {},
        {},
        "a note is required: what the customer must provide",
        "a note is required: what the customer must provide",
        "a note is required: what the customer must provide",
    ),
    (
        "data_true",
        {"field": "solvable"},
        {},
        {"solvable": "yes"},
        "data.solvable must be true",
        "data.solvable must be true (got 'yes')",
        "data.solvable must be true",
    ),
    (
        "data_positive",
        {"field": "estimate_hours"},
        {},
        {},
        "data.estimate_hours must be a number greater than 0",
        "data.estimate_hours must be a number greater than 0 (missing)",
        "data.estimate_hours must be a number greater than 0",
    ),
    (
        "data_one_of",
        {"field": "approach", "values": ["best", "custom"]},
        {},
        {"approach": "quick"},
        "data.approach must be one of best, custom",
        "data.approach must be one of best, custom (got 'quick')",
        "data.approach must be one of best, custom",
    ),
    (
        "admin_class",
        {"allowed": ["A"]},
        {"kind": "administrative", "category": "payments"},
        {},
        "the category must be administrative class A",
        "category 'payments' is administrative class B, not A",
        "administrative class",
    ),
    (
        "within_reopen_window",
        {},
        {"state": "resolved"},
        {},
        "reopening is allowed within 7 days of the resolution (open a new ticket instead)",
        "resolved 9 day(s) ago; reopening is allowed within 7 days (open a new ticket instead)",
        "reopening is allowed within 7 days",
    ),
]


def test_the_table_covers_every_registered_guard() -> None:
    assert sorted(c[0] for c in CASES) == sorted(REGISTRY)


@pytest.mark.parametrize(
    ("name", "args", "ticket", "data", "described", "refused", "shared"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_a_guard_reads_as_a_sentence_worded_like_its_refusal(
    name: str,
    args: dict[str, Any],
    ticket: dict[str, Any],
    data: dict[str, Any],
    described: str,
    refused: str,
    shared: str,
) -> None:
    assert REGISTRY[name].check_args(SUPPORT.spec, args) == []
    assert sentence(SUPPORT.spec, GuardRef(name=name, args=args)) == described
    ctx = GuardContext(replace(TICKET, **ticket), SUPPORT, "l1_agent", None, data, NOW)
    assert REGISTRY[name](ctx, args) == refused
    assert shared in described
    assert shared in refused


def test_a_hint_follows_the_sentence_as_it_follows_a_refusal() -> None:
    ref = GuardRef(name="admin_class", args={"allowed": ["A", "B"]}, hint="ask the supervisor")
    assert sentence(SUPPORT.spec, ref) == (
        "the category must be administrative class A/B; ask the supervisor"
    )


def test_the_shipped_definition_in_sentences() -> None:
    said = {
        (t.trigger, sentence(SUPPORT.spec, g)) for t in SUPPORT.spec.transitions for g in t.guards
    }
    l1 = "level1 channel (chat, help_center)"
    assert said == {
        ("triage", "this trigger is for technical tickets"),
        ("triage", f"the conversation must be on a {l1}, or data.channel must move it to one"),
        ("take", "this trigger is for administrative tickets"),
        ("start_solving", "the category must be handled at level1"),
        ("start_solving", "the priority must be known: complexity and urgency set"),
        ("escalate", "the priority must be known: complexity and urgency set"),
        (
            "escalate",
            "the category must not be in the level1 catalogue "
            "(one that is works through its playbook first: start_solving)",
        ),
        ("escalate", "data.channel is required: choose the level2 channel (chat, phone, video)"),
        (
            "escalate",
            "every step of the category's playbook must be tried in order before escalating",
        ),
        ("escalate", "a note is required: the diagnosis for Level 3"),
        ("plan_solution", "data.solvable must be true"),
        ("plan_solution", "data.estimate_hours must be a number greater than 0"),
        ("plan_solution", "data.approach must be one of best, custom"),
        ("declare_unsolvable", "a note is required: the explanation for the customer"),
        ("return_to_l2", "a note is required: guidance for Level 2"),
        ("request_info", "a note is required: what the customer must provide"),
        ("resolve", "a note is required: the resolution given to the customer"),
        (
            "resolve",
            "the category must be administrative class A; class B matters must be referred to "
            "the supervisor (refer_to_supervisor)",
        ),
        (
            "reopen",
            "reopening is allowed within 7 days of the resolution (open a new ticket instead)",
        ),
    }


@pytest.fixture
def acme(tmp_path: object, clock: FakeClock) -> Iterator[Api]:
    tf = Tierflow(f"sqlite:///{tmp_path}/g.db", clock=clock)
    app = create_app(Settings(admin_token=ADMIN_TOKEN), engine=tf, background=False)
    with TestClient(app) as c:
        yield Api(c, "acme")
    tf.db.dispose()


def test_the_workflow_route_gives_each_transitions_guards_as_sentences(acme: Api) -> None:
    body = acme.client.get("/v1/workflows/support", headers=acme.as_("customer")).json()
    transitions = body["definition"]["transitions"]
    assert len(body["guard_sentences"]) == len(transitions)
    for t, said in zip(transitions, body["guard_sentences"], strict=True):
        assert len(said) == len(t["guards"]), t["trigger"]
    solve = next(
        i for i, t in enumerate(transitions) if t["trigger"] == "plan_solution"
    )  # L3: three data guards
    assert body["guard_sentences"][solve] == [
        "data.solvable must be true",
        "data.estimate_hours must be a number greater than 0",
        "data.approach must be one of best, custom",
    ]
