"""`tierflow serve --demo`: a demo account with tickets in every state of the support workflow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflow import NotFound, Tierflow

from .tokens import TokenStore

ACCOUNT = "demo"
TECH = {"kind": "technical", "category": "login_password", "channel": "chat"}
OTHER = {"kind": "technical", "category": "other", "channel": "help_center"}
ADMIN_A = {"kind": "administrative", "category": "pricing", "channel": "chat"}
ADMIN_B = {"kind": "administrative", "category": "payments", "channel": "email"}

TRIAGE = ("fire", "triage", "l1_agent", None, None)
PRIORITY = ("fields", "l1_agent", {"complexity": "medium", "urgency": "high"})
SOLVE = ("fire", "start_solving", "l1_agent", None, None)
TO_L2 = ("fire", "escalate", "l1_agent", None, {"channel": "phone"})
TO_L3 = ("fire", "escalate", "l2_specialist", "Reproduced; needs a back-end fix", None)
PLAN = (
    "fire",
    "plan_solution",
    "l3_engineer",
    None,
    {"solvable": True, "estimate_hours": 8, "approach": "custom"},
)
TAKE = ("fire", "take", "executive", None, None)

# the demo's people: (name, e-mail, role); the integration has a token but is nobody
PEOPLE = [
    ("Ana Pérez", "ana.perez@demo.example", "customer"),
    ("Camila Rojas", "camila.rojas@demo.example", "l1_agent"),
    ("Diego Muñoz", "diego.munoz@demo.example", "l2_specialist"),
    ("Valentina Soto", "valentina.soto@demo.example", "l3_engineer"),
    ("Tomás Fuentes", "tomas.fuentes@demo.example", "executive"),
    ("Isidora Vera", "isidora.vera@demo.example", "supervisor"),
]
INTEGRATION = "help center widget"
CALENDAR = {
    "timezone": "America/Santiago",
    "hours": {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holiday_country": "CL",
}
"""The policy's company works on Chile's clock (summer time included) and Chile's holidays."""

# (subject, ticket fields, steps): one or more tickets per state
TICKETS: list[tuple[str, dict[str, Any], list[tuple[Any, ...]]]] = [
    ("Password reset email never arrives", TECH, []),
    ("Locked out after several attempts", TECH, [TRIAGE]),
    (
        "Cannot sign in on mobile",
        TECH,
        [TRIAGE, PRIORITY, SOLVE, ("step", "verify_account", "failed")],
    ),
    ("Bookings vanish from the agenda", OTHER, [TRIAGE, PRIORITY, TO_L2]),
    ("Sync with external calendar duplicates events", OTHER, [TRIAGE, PRIORITY, TO_L2, TO_L3]),
    ("Time slots computed in the wrong zone", OTHER, [TRIAGE, PRIORITY, TO_L2, TO_L3, PLAN]),
    ("Which plan includes SMS reminders?", ADMIN_A, [TAKE]),
    (
        "Refund for a double charge",
        ADMIN_B,
        [TAKE, ("fire", "refer_to_supervisor", "executive", None, None)],
    ),
    (
        "Screenshots requested",
        TECH,
        [
            TRIAGE,
            ("fire", "request_info", "l1_agent", "Please send a screenshot of the error", None),
        ],
    ),
    (
        "Forgot which email I used",
        TECH,
        [TRIAGE, PRIORITY, SOLVE, ("step", "verify_account", "solved")],
    ),
    (
        "Upgrade question, answered",
        ADMIN_A,
        [
            TAKE,
            ("fire", "resolve", "executive", "Sent the price list", None),
            ("fire", "close", "customer", None, None),
        ],
    ),
]


def load_demo(tf: Tierflow, tokens: TokenStore) -> dict[str, str] | None:
    """Create the demo account and its tickets; returns a token per role, or None if the
    demo account already exists (its tokens were printed when it was created)."""
    try:
        tf.account_id(ACCOUNT)
        return None
    except NotFound:
        pass
    tf.create_account(slug=ACCOUNT, name="Demo Scheduling Co.")
    tf.update_account(account=ACCOUNT, calendar=CALENDAR)  # Chile's clock and holidays
    people = {
        role: tf.create_user(account=ACCOUNT, name=name, email=email, roles=[role])
        for name, email, role in PEOPLE
    }
    who = {role: u.name for role, u in people.items()}
    received = tf.clock() - timedelta(days=3)
    for i, (subject, fields, steps) in enumerate(TICKETS):
        t = tf.create_ticket(
            account=ACCOUNT,
            subject=subject,
            actor=who["customer"],
            role="customer",
            received_at=received + timedelta(hours=5 * i),
            **fields,
        )
        for step in steps:
            if step[0] == "fields":
                tf.update_fields(
                    account=ACCOUNT, ticket_id=t.id, role=step[1], actor=who[step[1]], **step[2]
                )
            elif step[0] == "step":
                tf.record_playbook_step(
                    account=ACCOUNT,
                    ticket_id=t.id,
                    step=step[1],
                    outcome=step[2],
                    role="l1_agent",
                    actor=who["l1_agent"],
                )
            else:
                _, trigger, role, note, data = step
                tf.fire(
                    account=ACCOUNT,
                    ticket_id=t.id,
                    trigger=trigger,
                    role=role,
                    actor=who[role],
                    note=note,
                    data=data,
                )
    issued = {
        role: tokens.issue(account=ACCOUNT, role=role, name="demo", user_id=u.id)[1]
        for role, u in people.items()
    }
    issued["integration"] = tokens.issue(account=ACCOUNT, role="integration", name=INTEGRATION)[1]
    return issued
