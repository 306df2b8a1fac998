"""Bringing tickets to any state of the default workflow, through the engine's own front door.

Each recipe is the list of steps a real team would take; tests start from the state they need.
"""

from __future__ import annotations

from typing import Any

from workflow import TicketView, Tierflow

ACCOUNT = "acme"

TECH = {"kind": "technical", "category": "login_password", "channel": "chat"}
TECH_OTHER = {"kind": "technical", "category": "other", "channel": "help_center"}
ADMIN_A = {"kind": "administrative", "category": "pricing", "channel": "chat"}
ADMIN_B = {"kind": "administrative", "category": "payments", "channel": "chat"}

LOGIN_STEPS = ["verify_account", "check_lockout", "send_reset", "clear_session"]

# step: (trigger, role, note, data) | ("fields", role, {...}) | ("step", step_id, outcome)
Step = tuple[Any, ...]

PATHS: dict[str, tuple[dict[str, str], list[Step]]] = {
    "new": (TECH, []),
    "l1_triage": (TECH, [("triage", "l1_agent", None, None)]),
    "l1_solving": (
        TECH,
        [
            ("triage", "l1_agent", None, None),
            ("fields", "l1_agent", {"complexity": "low", "urgency": "high"}),
            ("start_solving", "l1_agent", None, None),
        ],
    ),
    "l1_exhausted": (
        TECH,
        [
            ("triage", "l1_agent", None, None),
            ("fields", "l1_agent", {"complexity": "low", "urgency": "high"}),
            ("start_solving", "l1_agent", None, None),
            *[("step", s, "failed") for s in LOGIN_STEPS],
        ],
    ),
    "l2_solving": (
        TECH_OTHER,
        [
            ("triage", "l1_agent", None, None),
            ("fields", "l1_agent", {"complexity": "high", "urgency": "medium"}),
            ("escalate", "l1_agent", None, {"channel": "phone"}),
        ],
    ),
}
PATHS["l3_assessment"] = (
    TECH_OTHER,
    [*PATHS["l2_solving"][1], ("escalate", "l2_specialist", "db replication lag", None)],
)
PATHS["l3_solution"] = (
    TECH_OTHER,
    [
        *PATHS["l3_assessment"][1],
        (
            "plan_solution",
            "l3_engineer",
            None,
            {"solvable": True, "estimate_hours": 6, "approach": "custom"},
        ),
    ],
)
PATHS["admin_executive"] = (ADMIN_A, [("take", "executive", None, None)])
PATHS["admin_executive_b"] = (ADMIN_B, [("take", "executive", None, None)])
PATHS["admin_supervisor"] = (
    ADMIN_B,
    [("take", "executive", None, None), ("refer_to_supervisor", "executive", None, None)],
)
PATHS["waiting_on_customer"] = (
    TECH,
    [*PATHS["l1_triage"][1], ("request_info", "l1_agent", "which username do you use?", None)],
)
PATHS["resolved"] = (
    TECH,
    [*PATHS["l1_solving"][1], ("resolve", "l1_agent", "password reset link sent", None)],
)
PATHS["closed"] = (TECH, [*PATHS["resolved"][1], ("close", "customer", None, None)])


def new_ticket(tf: Tierflow, fields: dict[str, str], **extra: Any) -> TicketView:
    return tf.create_ticket(
        account=ACCOUNT,
        subject="Cannot log in",
        description="since this morning",
        actor="widget",
        **{**fields, **extra},
    )


def run_steps(tf: Tierflow, ticket_id: int, steps: list[Step]) -> TicketView:
    view = tf.get_ticket(account=ACCOUNT, ticket_id=ticket_id)
    for step in steps:
        if step[0] == "fields":
            view = tf.update_fields(account=ACCOUNT, ticket_id=ticket_id, role=step[1], **step[2])
        elif step[0] == "step":
            view = tf.record_playbook_step(
                account=ACCOUNT,
                ticket_id=ticket_id,
                step=step[1],
                outcome=step[2],
                role="l1_agent",
            )
        else:
            trigger, role, note, data = step
            view = tf.fire(
                account=ACCOUNT,
                ticket_id=ticket_id,
                trigger=trigger,
                role=role,
                note=note,
                data=data,
                actor=f"{role}-1",
            )
    return view


def reach(tf: Tierflow, path: str, **extra: Any) -> TicketView:
    """A new ticket driven along ``PATHS[path]``."""
    fields, steps = PATHS[path]
    ticket = new_ticket(tf, fields, **extra)
    return run_steps(tf, ticket.id, steps)
