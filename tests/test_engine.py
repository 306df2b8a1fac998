"""The default workflow, trigger by trigger: every transition from every source, every guard
passing and failing with its exact reason, roles, writes-nothing on refusal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, LOGIN_STEPS, reach
from workflow import (
    Forbidden,
    GuardFailed,
    InputError,
    InvalidTransition,
    Reason,
    Tierflow,
    UnknownTrigger,
    builtin_definitions,
)

NOTE = "a note"
PLAN = {"solvable": True, "estimate_hours": 4, "approach": "best"}

# (start path, trigger, role, note, data) -> (dest, fields that must hold after)
TRANSITIONS: list[tuple[str, str, str, str | None, dict[str, Any] | None, str, dict[str, Any]]] = [
    ("new", "triage", "l1_agent", None, None, "l1_triage", {"level": "level1"}),
    ("admin_new", "take", "executive", None, None, "admin_executive", {"level": "administrative"}),
    ("new", "cancel", "customer", None, None, "closed", {"outcome": "cancelled", "level": None}),
    ("l1_triage_prio", "start_solving", "l1_agent", None, None, "l1_solving", {"priority": "P2"}),
    (
        "l1_triage_other",
        "escalate",
        "l1_agent",
        None,
        {"channel": "video"},
        "l2_solving",
        {"channel": "video", "level": "level2"},
    ),
    (
        "l1_triage",
        "request_info",
        "l1_agent",
        NOTE,
        None,
        "waiting_on_customer",
        {"level": None, "previous_state": "l1_triage"},
    ),
    ("l1_triage", "cancel", "integration", None, None, "closed", {"outcome": "cancelled"}),
    (
        "l1_exhausted",
        "escalate",
        "l1_agent",
        None,
        {"channel": "phone"},
        "l2_solving",
        {"channel": "phone"},
    ),
    ("l1_solving", "resolve", "l1_agent", NOTE, None, "resolved", {"outcome": "solved"}),
    ("l1_solving", "request_info", "l1_agent", NOTE, None, "waiting_on_customer", {}),
    ("l1_solving", "cancel", "supervisor", None, None, "closed", {"outcome": "cancelled"}),
    ("l2_solving", "escalate", "l2_specialist", NOTE, None, "l3_assessment", {"level": "level3"}),
    ("l2_solving", "resolve", "l2_specialist", NOTE, None, "resolved", {"outcome": "solved"}),
    ("l2_solving", "request_info", "l2_specialist", NOTE, None, "waiting_on_customer", {}),
    ("l2_solving", "cancel", "customer", None, None, "closed", {}),
    ("l3_assessment", "plan_solution", "l3_engineer", None, PLAN, "l3_solution", {}),
    (
        "l3_assessment",
        "declare_unsolvable",
        "l3_engineer",
        NOTE,
        None,
        "resolved",
        {"outcome": "unsolvable"},
    ),
    ("l3_assessment", "return_to_l2", "l3_engineer", NOTE, None, "l2_solving", {}),
    ("l3_assessment", "request_info", "l3_engineer", NOTE, None, "waiting_on_customer", {}),
    ("l3_assessment", "cancel", "integration", None, None, "closed", {}),
    ("l3_solution", "resolve", "l3_engineer", NOTE, None, "resolved", {"outcome": "solved"}),
    ("l3_solution", "return_to_l2", "l3_engineer", NOTE, None, "l2_solving", {}),
    ("l3_solution", "request_info", "l3_engineer", NOTE, None, "waiting_on_customer", {}),
    ("l3_solution", "cancel", "supervisor", None, None, "closed", {}),
    (
        "admin_executive",
        "refer_to_supervisor",
        "executive",
        None,
        None,
        "admin_supervisor",
        {"channel": "email"},
    ),
    ("admin_executive", "resolve", "executive", NOTE, None, "resolved", {"outcome": "solved"}),
    ("admin_executive", "request_info", "executive", NOTE, None, "waiting_on_customer", {}),
    ("admin_executive", "cancel", "customer", None, None, "closed", {}),
    ("admin_supervisor", "resolve", "supervisor", NOTE, None, "resolved", {"outcome": "solved"}),
    ("admin_supervisor", "request_info", "supervisor", NOTE, None, "waiting_on_customer", {}),
    ("admin_supervisor", "cancel", "supervisor", None, None, "closed", {}),
    (
        "waiting_on_customer",
        "customer_replied",
        "customer",
        None,
        None,
        "l1_triage",
        {"level": "level1"},
    ),
    ("waiting_on_customer", "cancel", "customer", None, None, "closed", {}),
    ("resolved", "reopen", "customer", None, None, "l1_solving", {"outcome": None}),
    ("resolved", "close", "customer", None, None, "closed", {"outcome": "solved"}),
]

EXTRA_PATHS = {
    "admin_new": ("admin_executive", 0),  # the admin path's ticket before `take`
    "l1_triage_other": ("l2_solving", 2),  # the 'other' path before `escalate` (after priority)
    "l1_triage_prio": ("l1_solving", 2),  # triaged, complexity and urgency set
}


def _start(tf: Tierflow, path: str) -> int:
    if path in EXTRA_PATHS:
        from tests.scenarios import PATHS, new_ticket, run_steps

        base, n = EXTRA_PATHS[path]
        fields, steps = PATHS[base]
        t = new_ticket(tf, fields)
        return run_steps(tf, t.id, steps[:n]).id
    return reach(tf, path).id


def _source_state(path: str) -> str:
    return {
        "admin_new": "new",
        "l1_triage_other": "l1_triage",
        "l1_triage_prio": "l1_triage",
        "l1_exhausted": "l1_solving",
    }.get(path, path)


def test_the_table_covers_every_trigger_from_every_source() -> None:
    (support,) = [d for d in builtin_definitions() if d.name == "support"]
    defined = {(t.source, t.trigger) for t in support.transitions}
    tested = {(_source_state(row[0]), row[1]) for row in TRANSITIONS}
    assert tested == defined


@pytest.mark.parametrize(
    ("path", "trigger", "role", "note", "data", "dest", "after"),
    TRANSITIONS,
    ids=[f"{r[0]}-{r[1]}" for r in TRANSITIONS],
)
def test_transition(
    tf: Tierflow,
    path: str,
    trigger: str,
    role: str,
    note: str | None,
    data: dict[str, Any] | None,
    dest: str,
    after: dict[str, Any],
) -> None:
    ticket_id = _start(tf, path)
    before = tf.get_ticket(account=ACCOUNT, ticket_id=ticket_id)
    view = tf.fire(
        account=ACCOUNT,
        ticket_id=ticket_id,
        trigger=trigger,
        role=role,
        note=note,
        data=data,
        actor="someone",
    )
    assert view.state == dest
    assert view.version == before.version + 1
    for field, value in after.items():
        assert getattr(view, field) == value, field
    last = tf.events(account=ACCOUNT, ticket_id=ticket_id)[-1]
    assert (last.seq, last.kind, last.trigger, last.from_state, last.to_state) == (
        view.version,
        "transition",
        trigger,
        before.state,
        dest,
    )
    assert (last.actor, last.role, last.note, last.data) == ("someone", role, note, data or {})
    # the admin may do anything
    admin_ticket = _start(tf, path)
    assert (
        tf.fire(
            account=ACCOUNT,
            ticket_id=admin_ticket,
            trigger=trigger,
            role="admin",
            note=note,
            data=data,
        ).state
        == dest
    )


# (start path, trigger, role, note, data) -> the exact reasons
GUARD_FAILURES: list[tuple[str, str, str, str | None, dict[str, Any] | None, list[Reason]]] = [
    (
        "admin_new",
        "triage",
        "l1_agent",
        None,
        None,
        [
            Reason("kind_is", "ticket is administrative, this trigger is for technical tickets"),
        ],
    ),
    (
        "new_email",
        "triage",
        "l1_agent",
        None,
        None,
        [
            Reason(
                "channel_moved_to",
                "channel 'email' is not served at level1: give data.channel to move the "
                "conversation to a level1 channel (chat, help_center)",
            ),
        ],
    ),
    (
        "new",
        "take",
        "executive",
        None,
        None,
        [
            Reason("kind_is", "ticket is technical, this trigger is for administrative tickets"),
        ],
    ),
    (
        "l1_triage",
        "start_solving",
        "l1_agent",
        None,
        None,
        [
            Reason("priority_known", "priority unknown: set complexity and urgency first"),
        ],
    ),
    (
        "l1_triage_other",
        "start_solving",
        "l1_agent",
        None,
        None,
        [
            Reason("category_level", "category 'other' is handled at level2, not level1"),
        ],
    ),
    (
        "l1_triage",
        "escalate",
        "l1_agent",
        None,
        None,
        [
            Reason(
                "category_beyond",
                "category 'login_password' is in the level1 catalogue: "
                "work through its playbook first (start_solving)",
            ),
            Reason("priority_known", "priority unknown: set complexity and urgency first"),
            Reason(
                "data_channel",
                "data.channel is required: choose the level2 channel (chat, phone, video)",
            ),
        ],
    ),
    (
        "l1_triage_other",
        "escalate",
        "l1_agent",
        None,
        {"channel": "email"},
        [
            Reason(
                "data_channel",
                "data.channel 'email' is not a level2 channel (allowed: chat, phone, video)",
            ),
        ],
    ),
    (
        "l1_solving",
        "escalate",
        "l1_agent",
        None,
        {"channel": "chat"},
        [
            Reason(
                "playbook_exhausted",
                "playbook step 1 of 4 (verify_account: Verify the account and the username the "
                "customer uses) not tried yet; every step must be tried in order before "
                "escalating",
            ),
        ],
    ),
    (
        "l1_solving",
        "resolve",
        "l1_agent",
        "   ",
        None,
        [
            Reason("note_given", "a note is required: the resolution given to the customer"),
        ],
    ),
    (
        "l1_solving",
        "request_info",
        "l1_agent",
        None,
        None,
        [
            Reason("note_given", "a note is required: what the customer must provide"),
        ],
    ),
    (
        "l2_solving",
        "escalate",
        "l2_specialist",
        None,
        None,
        [
            Reason("note_given", "a note is required: the diagnosis for Level 3"),
        ],
    ),
    (
        "l3_assessment",
        "plan_solution",
        "l3_engineer",
        None,
        None,
        [
            Reason("data_true", "data.solvable must be true (missing)"),
            Reason(
                "data_positive", "data.estimate_hours must be a number greater than 0 (missing)"
            ),
            Reason("data_one_of", "data.approach must be one of best, custom (missing)"),
        ],
    ),
    (
        "l3_assessment",
        "plan_solution",
        "l3_engineer",
        None,
        {"solvable": False, "estimate_hours": 0, "approach": "quick"},
        [
            Reason("data_true", "data.solvable must be true (got False)"),
            Reason("data_positive", "data.estimate_hours must be a number greater than 0 (got 0)"),
            Reason("data_one_of", "data.approach must be one of best, custom (got 'quick')"),
        ],
    ),
    (
        "l3_assessment",
        "plan_solution",
        "l3_engineer",
        None,
        {"solvable": True, "estimate_hours": True, "approach": "best"},
        [
            Reason(
                "data_positive", "data.estimate_hours must be a number greater than 0 (got True)"
            ),
        ],
    ),
    (
        "l3_assessment",
        "declare_unsolvable",
        "l3_engineer",
        "",
        None,
        [
            Reason("note_given", "a note is required: the explanation for the customer"),
        ],
    ),
    (
        "l3_solution",
        "return_to_l2",
        "l3_engineer",
        None,
        None,
        [
            Reason("note_given", "a note is required: guidance for Level 2"),
        ],
    ),
    (
        "admin_executive_b",
        "resolve",
        "executive",
        None,
        None,
        [
            Reason(
                "admin_class",
                "category 'payments' is administrative class B, not A; class B "
                "matters must be referred to the supervisor (refer_to_supervisor)",
            ),
            Reason("note_given", "a note is required: the resolution given to the customer"),
        ],
    ),
]


def _guard_start(tf: Tierflow, path: str) -> int:
    if path == "new_email":
        from tests.scenarios import TECH, new_ticket

        return new_ticket(tf, {**TECH, "channel": "email"}).id
    return _start(tf, path)


@pytest.mark.parametrize(
    ("path", "trigger", "role", "note", "data", "reasons"),
    GUARD_FAILURES,
    ids=[f"{r[0]}-{r[1]}-{i}" for i, r in enumerate(GUARD_FAILURES)],
)
def test_guard_refuses_with_reasons_and_writes_nothing(
    tf: Tierflow,
    path: str,
    trigger: str,
    role: str,
    note: str | None,
    data: dict[str, Any] | None,
    reasons: list[Reason],
) -> None:
    ticket_id = _guard_start(tf, path)
    before = tf.get_ticket(account=ACCOUNT, ticket_id=ticket_id)
    events_before = tf.events(account=ACCOUNT, ticket_id=ticket_id)
    with pytest.raises(GuardFailed) as info:
        tf.fire(
            account=ACCOUNT, ticket_id=ticket_id, trigger=trigger, role=role, note=note, data=data
        )
    assert info.value.reasons == reasons
    assert info.value.trigger == trigger
    # explain() gives the same reasons for that role and request
    after = tf.get_ticket(account=ACCOUNT, ticket_id=ticket_id)
    assert after == before
    assert tf.events(account=ACCOUNT, ticket_id=ticket_id) == events_before


def test_explain_lists_every_trigger_from_the_state_with_all_reasons(tf: Tierflow) -> None:
    t = reach(tf, "l1_solving")
    options = tf.explain(account=ACCOUNT, ticket_id=t.id, role="customer")
    assert [(o.trigger, o.dest, o.allowed) for o in options] == [
        ("escalate", "l2_solving", False),
        ("request_info", "waiting_on_customer", False),
        ("resolve", "resolved", False),
        ("cancel", "closed", True),
    ]
    assert options[0].reasons == (
        Reason("role", "role 'customer' may not fire 'escalate' here (allowed: l1_agent)"),
        Reason(
            "playbook_exhausted",
            "playbook step 1 of 4 (verify_account: Verify the account and the username the "
            "customer uses) not tried yet; every step must be tried in order before "
            "escalating",
        ),
        Reason(
            "data_channel",
            "data.channel is required: choose the level2 channel (chat, phone, video)",
        ),
    )
    agent = tf.explain(account=ACCOUNT, ticket_id=t.id, role="l1_agent")
    assert [(o.trigger, o.allowed) for o in agent] == [
        ("escalate", False),
        ("request_info", False),
        ("resolve", False),
        ("cancel", False),
    ]
    assert agent[3].reasons == (
        Reason(
            "role",
            "role 'l1_agent' may not fire 'cancel' here (allowed: customer, integration, "
            "supervisor)",
        ),
    )


ROLE_FAILURES = [
    (
        "new",
        "triage",
        "customer",
        "role 'customer' may not fire 'triage' from 'new' (allowed: l1_agent)",
    ),
    (
        "l2_solving",
        "escalate",
        "l1_agent",
        "role 'l1_agent' may not fire 'escalate' from 'l2_solving' (allowed: l2_specialist)",
    ),
    (
        "admin_executive",
        "resolve",
        "supervisor",
        "role 'supervisor' may not fire 'resolve' from 'admin_executive' (allowed: executive)",
    ),
    ("resolved", "close", "l3_engineer", None),  # staff may close: not a failure
    (
        "l1_solving",
        "cancel",
        "l1_agent",
        "role 'l1_agent' may not fire 'cancel' from 'l1_solving' "
        "(allowed: customer, integration, supervisor)",
    ),
]


@pytest.mark.parametrize(("path", "trigger", "role", "message"), ROLE_FAILURES)
def test_roles(tf: Tierflow, path: str, trigger: str, role: str, message: str | None) -> None:
    t = reach(tf, path)
    if message is None:
        assert tf.fire(account=ACCOUNT, ticket_id=t.id, trigger=trigger, role=role).state
        return
    with pytest.raises(Forbidden) as info:
        tf.fire(account=ACCOUNT, ticket_id=t.id, trigger=trigger, role=role, note=NOTE)
    assert info.value.detail == message
    assert tf.get_ticket(account=ACCOUNT, ticket_id=t.id).version == t.version


def test_invalid_transition_lists_what_is_possible_and_writes_nothing(tf: Tierflow) -> None:
    t = reach(tf, "new")
    with pytest.raises(InvalidTransition) as info:
        tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="resolve", role="admin", note=NOTE)
    assert info.value.detail == (
        "trigger 'resolve' is not possible from state 'new'; possible now: triage, take, cancel"
    )
    assert info.value.possible == ["triage", "take", "cancel"]
    closed = reach(tf, "closed")
    with pytest.raises(InvalidTransition) as info:
        tf.fire(account=ACCOUNT, ticket_id=closed.id, trigger="reopen", role="customer")
    assert info.value.detail == (
        "trigger 'reopen' is not possible from state 'closed'; possible now: none (final state)"
    )
    assert len(tf.events(account=ACCOUNT, ticket_id=t.id)) == 1


def test_unknown_trigger(tf: Tierflow) -> None:
    t = reach(tf, "new")
    with pytest.raises(UnknownTrigger) as info:
        tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="teleport", role="admin")
    assert info.value.detail.startswith("workflow 'support' has no trigger 'teleport'; known: ")
    assert "triage" in info.value.known


class TestPlaybook:
    def test_steps_in_order_then_escalate(self, tf: Tierflow) -> None:
        t = reach(tf, "l1_solving")
        for i, step in enumerate(LOGIN_STEPS, start=1):
            t = tf.record_playbook_step(
                account=ACCOUNT, ticket_id=t.id, step=step, outcome="failed", role="l1_agent"
            )
            assert t.playbook_position == i
        t = tf.fire(
            account=ACCOUNT,
            ticket_id=t.id,
            trigger="escalate",
            role="l1_agent",
            data={"channel": "chat"},
        )
        assert (t.state, t.channel) == ("l2_solving", "chat")

    @pytest.mark.parametrize(
        ("done", "step", "message"),
        [
            (
                0,
                "send_reset",
                "step: playbook step 1 of 4 (verify_account) not tried yet; "
                "steps are recorded in order",
            ),
            (2, "verify_account", "step: step 1 (verify_account) was already recorded"),
            (4, "clear_session", "step: step 4 (clear_session) was already recorded"),
            (
                0,
                "reboot",
                "step: 'reboot' is not a step of the 'login_password' playbook "
                "(steps: verify_account, check_lockout, send_reset, clear_session)",
            ),
        ],
    )
    def test_out_of_order_is_refused(
        self, tf: Tierflow, done: int, step: str, message: str
    ) -> None:
        t = reach(tf, "l1_solving")
        for s in LOGIN_STEPS[:done]:
            t = tf.record_playbook_step(
                account=ACCOUNT, ticket_id=t.id, step=s, outcome="failed", role="l1_agent"
            )
        with pytest.raises(InputError) as info:
            tf.record_playbook_step(
                account=ACCOUNT, ticket_id=t.id, step=step, outcome="failed", role="l1_agent"
            )
        assert info.value.detail == message
        assert tf.get_ticket(account=ACCOUNT, ticket_id=t.id).version == t.version

    def test_a_solved_step_resolves_the_ticket(self, tf: Tierflow) -> None:
        t = reach(tf, "l1_solving")
        tf.record_playbook_step(
            account=ACCOUNT,
            ticket_id=t.id,
            step="verify_account",
            outcome="failed",
            role="l1_agent",
        )
        t = tf.record_playbook_step(
            account=ACCOUNT,
            ticket_id=t.id,
            step="check_lockout",
            outcome="solved",
            role="l1_agent",
            actor="ana",
        )
        assert (t.state, t.outcome, t.playbook_position) == ("resolved", "solved", 2)
        last_two = tf.events(account=ACCOUNT, ticket_id=t.id)[-2:]
        assert [(e.kind, e.trigger, e.to_state, e.actor) for e in last_two] == [
            ("playbook_step", None, None, "ana"),
            ("transition", "resolve", "resolved", "ana"),
        ]
        assert last_two[0].data == {"step": "check_lockout", "index": 2, "outcome": "solved"}
        assert last_two[1].note == (
            "solved by playbook step 2: Check for a lockout after failed attempts and lift it"
        )

    @pytest.mark.parametrize(
        ("path", "role", "error", "message"),
        [
            (
                "l1_triage",
                "l1_agent",
                InvalidTransition,
                "playbook steps are recorded in state 'l1_solving', not 'l1_triage'; possible now: "
                "start_solving, escalate, request_info, cancel",
            ),
            (
                "l1_solving",
                "l2_specialist",
                Forbidden,
                "role 'l2_specialist' may not record playbook steps (allowed: l1_agent)",
            ),
        ],
    )
    def test_only_in_its_state_and_by_its_role(
        self, tf: Tierflow, path: str, role: str, error: type[Exception], message: str
    ) -> None:
        t = reach(tf, path)
        with pytest.raises(error) as info:
            tf.record_playbook_step(
                account=ACCOUNT,
                ticket_id=t.id,
                step="verify_account",
                outcome="failed",
                role=role,
            )
        assert info.value.detail == message  # type: ignore[attr-defined]

    def test_recategorising_restarts_the_playbook(self, tf: Tierflow) -> None:
        t = reach(tf, "l1_solving")
        tf.record_playbook_step(
            account=ACCOUNT,
            ticket_id=t.id,
            step="verify_account",
            outcome="failed",
            role="l1_agent",
        )
        t = tf.update_fields(
            account=ACCOUNT, ticket_id=t.id, role="l1_agent", category="email_reception"
        )
        assert (t.category, t.playbook_position) == ("email_reception", 0)


class TestAdministrative:
    def test_class_a_resolved_by_the_executive(self, tf: Tierflow) -> None:
        t = reach(tf, "admin_executive")
        t = tf.fire(
            account=ACCOUNT,
            ticket_id=t.id,
            trigger="resolve",
            role="executive",
            note="price list sent",
        )
        assert (t.state, t.outcome, t.level) == ("resolved", "solved", None)

    def test_class_b_is_referred_to_the_supervisor_over_email(self, tf: Tierflow) -> None:
        t = reach(tf, "admin_executive_b")
        with pytest.raises(GuardFailed):
            tf.fire(
                account=ACCOUNT,
                ticket_id=t.id,
                trigger="resolve",
                role="executive",
                note="refund issued",
            )
        t = tf.fire(
            account=ACCOUNT, ticket_id=t.id, trigger="refer_to_supervisor", role="executive"
        )
        assert (t.state, t.channel, t.level) == ("admin_supervisor", "email", "administrative")
        t = tf.fire(
            account=ACCOUNT,
            ticket_id=t.id,
            trigger="resolve",
            role="supervisor",
            note="refund approved",
        )
        assert (t.state, t.outcome) == ("resolved", "solved")


class TestWaitingAndReopen:
    @pytest.mark.parametrize(
        ("path", "role"),
        [
            ("l1_solving", "l1_agent"),
            ("l2_solving", "l2_specialist"),
            ("l3_solution", "l3_engineer"),
            ("admin_supervisor", "supervisor"),
        ],
    )
    def test_customer_reply_returns_where_it_came_from(
        self, tf: Tierflow, path: str, role: str
    ) -> None:
        t = reach(tf, path)
        origin = t.state
        t = tf.fire(
            account=ACCOUNT,
            ticket_id=t.id,
            trigger="request_info",
            role=role,
            note="send a screenshot",
        )
        assert (t.state, t.previous_state, t.level) == ("waiting_on_customer", origin, None)
        t = tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="customer_replied", role="customer")
        assert t.state == origin

    @pytest.mark.parametrize(
        ("days", "reopened"), [(0, True), (7, True), (7.0001, False), (30, False)]
    )
    def test_reopen_window(
        self, tf: Tierflow, clock: FakeClock, days: float, reopened: bool
    ) -> None:
        t = reach(tf, "l2_solving")
        t = tf.fire(
            account=ACCOUNT,
            ticket_id=t.id,
            trigger="resolve",
            role="l2_specialist",
            note="index rebuilt",
        )
        clock.advance(days=days)
        if reopened:
            t = tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="reopen", role="customer")
            assert (t.state, t.outcome, t.resolved_at) == ("l2_solving", None, None)
            return
        with pytest.raises(GuardFailed) as info:
            tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="reopen", role="customer")
        assert info.value.reasons == [
            Reason(
                "within_reopen_window",
                f"resolved {int(days)} day(s) ago; reopening is allowed within 7 days "
                "(open a new ticket instead)",
            ),
        ]

    def test_reopen_goes_back_to_the_state_that_resolved_it(self, tf: Tierflow) -> None:
        t = reach(tf, "admin_supervisor")
        t = tf.fire(
            account=ACCOUNT, ticket_id=t.id, trigger="resolve", role="supervisor", note="done"
        )
        t = tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="reopen", role="integration")
        assert t.state == "admin_supervisor"
