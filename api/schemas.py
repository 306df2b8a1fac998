"""Request and response bodies of the v1 contract (with the examples ``/docs`` shows)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
)

from workflow import EventView, Option, TicketView, User

from .tokens import TokenInfo


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (lone surrogate characters found)") from None
    return value


def _plain_json(value: Any, where: str = "data") -> Any:
    """JSON a database can store and any client can parse: finite numbers, no NUL."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: numbers must be finite (got {value})")
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k)
            _plain_json(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain_json(v, f"{where}[{i}]")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
MAX_DATA_BYTES = 64 * 1024


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_DATA_BYTES:
        raise ValueError(f"serialised to {size} bytes; the limit is {MAX_DATA_BYTES}")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json), AfterValidator(_bounded)]
Visibility = Literal["public", "internal"]


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable identifier, e.g. /problems/guard-failed")
    title: str
    status: int
    detail: str = Field(description="What went wrong, in words a person can act on")


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


# --- accounts and tokens -------------------------------------------------------------------
class AccountCreate(BaseModel):
    model_config = _examples({"slug": "acme", "name": "Acme Scheduling"})

    slug: Text = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: Text = Field(min_length=1, max_length=200)


class AccountPublic(BaseModel):
    id: int
    slug: str
    name: str


class CalendarIn(BaseModel):
    """A business calendar, in the shape of a definition's ``calendar``."""

    model_config = ConfigDict(extra="forbid")

    timezone: Text = Field(
        min_length=1,
        max_length=64,
        description="IANA zone, e.g. America/Santiago (Chile's clock, with its summer time); "
        "Etc/GMT+4 is a fixed UTC-4 (IANA inverts the sign).",
    )
    hours: dict[str, list[Text]] = Field(
        description="Weekday (mon..sun) -> local 'HH:MM-HH:MM' intervals; a missing day is closed."
    )
    holidays: list[Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]] = Field(
        default_factory=list, max_length=2000, description="Local dates closed all day (ISO)."
    )
    holiday_country: Text | None = Field(
        default=None, min_length=1, max_length=8, description="e.g. CL"
    )
    holiday_subdivision: Text | None = Field(
        default=None, min_length=1, max_length=16, description="e.g. RM"
    )


class AccountUpdate(BaseModel):
    model_config = _examples(
        {"name": "Demo Scheduling SpA"},
        {
            "calendar": {
                "timezone": "America/Santiago",
                "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                "holiday_country": "CL",
            }
        },
    )

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    calendar: CalendarIn | None = Field(
        default=None,
        description="The business calendar of the account's new tickets; `null`: the "
        "workflow definition's. Open tickets keep the calendar they have.",
    )


class AccountSettingsPublic(BaseModel):
    slug: str
    name: str
    calendar: dict[str, Any] | None = Field(
        description="The account's calendar (without the resolved country holiday dates); "
        "null: the workflow definition's."
    )
    country_holidays: int = Field(description="How many dates the country's holidays resolved to.")


class TokenCreate(BaseModel):
    model_config = _examples(
        {"role": "integration", "name": "chat widget"},
        {"role": "l1_agent", "name": "Camila Rojas", "email": "camila@example.com"},
        {
            "role": "l2_specialist",
            "name": "laptop",
            "user_id": 7,
            "expires_at": "2027-01-31T00:00:00Z",
        },
    )

    role: Text = Field(min_length=1, max_length=40)
    name: Text = Field(
        min_length=1,
        max_length=200,
        description="With `user_id`: the token's label. Otherwise the integration's name "
        "(role `integration`) or the new person's name (any other role).",
    )
    user_id: int | None = Field(
        default=None, description="A token for this existing user, who must hold `role`."
    )
    email: EmailStr | None = Field(
        default=None, description="The new person's e-mail (without `user_id` only)."
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="The token stops working at this instant (ISO 8601 with offset)."
    )


class UserCreate(BaseModel):
    model_config = _examples(
        {"name": "Ana Pérez", "email": "ana@example.com", "roles": ["customer"]},
        {
            "name": "Camila Rojas",
            "email": "camila@example.com",
            "roles": ["l1_agent", "l2_specialist"],
        },
    )

    name: Text = Field(min_length=1, max_length=200)
    email: EmailStr | None = None
    roles: list[Text] = Field(min_length=1, max_length=20)
    org_wide: StrictBool = Field(
        default=False,
        description="A requester who sees every ticket of the account, not only their own.",
    )


class UserPublic(BaseModel):
    id: int
    name: str
    email: str | None
    roles: list[str]
    org_wide: bool
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserPublic:
        return cls(
            id=u.id,
            name=u.name,
            email=u.email,
            roles=list(u.roles),
            org_wide=u.org_wide,
            created_at=u.created_at,
        )


class TokenPublic(BaseModel):
    id: int
    role: str
    name: str
    user: UserPublic | None = Field(description="The person it acts for; null: an integration's.")
    expires_at: datetime | None
    token: str = Field(description="Shown only in this answer; only its hash is stored.")


class TokenInfoPublic(BaseModel):
    """A token as `GET …/tokens` lists it: never the secret."""

    id: int
    role: str
    name: str
    user: UserPublic | None
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="To the minute (written at most once a minute)."
    )
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: TokenInfo) -> TokenInfoPublic:
        return cls(
            id=t.id,
            role=t.role,
            name=t.name,
            user=None if t.user is None else UserPublic.of(t.user),
            created_at=t.created_at,
            last_used_at=t.last_used_at,
            expires_at=t.expires_at,
            revoked_at=t.revoked_at,
        )


# --- tickets -------------------------------------------------------------------------------
class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    email: EmailStr | None = None


class TicketCreate(BaseModel):
    model_config = _examples(
        {
            "kind": "technical",
            "category": "login_password",
            "subject": "Cannot log in since this morning",
            "description": "The password reset email never arrives.",
            "channel": "chat",
            "complexity": "low",
            "urgency": "high",
            "customer": {"name": "Ana Pérez", "email": "ana@example.com"},
        }
    )

    kind: Text = Field(min_length=1, max_length=40)
    category: Text = Field(min_length=1, max_length=60)
    subject: Text = Field(min_length=1, max_length=300)
    description: Text = Field(default="", max_length=20_000)
    channel: Text = Field(min_length=1, max_length=40)
    complexity: Text | None = None
    urgency: Text | None = None
    customer: Customer | None = None
    received_at: AwareDatetime | None = Field(
        default=None,
        description="When the customer actually asked (importing older tickets); not in the "
        "future; defaults to now. ISO 8601 with offset.",
    )
    workflow: Text = "support"


class TicketUpdate(BaseModel):
    model_config = _examples({"complexity": "medium", "urgency": "critical"})

    complexity: Text | None = None
    urgency: Text | None = None
    category: Text | None = None
    note: Text | None = Field(default=None, max_length=20_000)
    visibility: Visibility | None = Field(default=None, description="Of `note` (default internal).")


class WorkflowRef(BaseModel):
    name: str
    version: str
    hash: str


class SlaClock(BaseModel):
    target_business_seconds: int | None
    due_at: datetime | None
    status: Literal["running", "paused", "met", "breached", "none"]
    stopped_at: datetime | None
    elapsed_business_seconds: float = Field(
        description="Business seconds used, exact to the microsecond (a decimal fraction)."
    )
    remaining_business_seconds: float | None = Field(
        description="Target minus elapsed, exact to the microsecond; negative once overdue."
    )
    breached_at: datetime | None


_FR_CLOCK: dict[str, Any] = {
    "target_business_seconds": 32400,
    "due_at": "2026-11-25T14:00:00Z",
    "status": "running",
    "stopped_at": None,
    "elapsed_business_seconds": 3600,
    "remaining_business_seconds": 28800,
    "breached_at": None,
}
_NO_TARGET: dict[str, Any] = {
    **_FR_CLOCK,
    "target_business_seconds": None,
    "due_at": None,
    "status": "none",
    "remaining_business_seconds": None,
}


class TicketPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "account": "acme",
                    "kind": "technical",
                    "category": "login_password",
                    "subject": "Cannot log in since this morning",
                    "description": "",
                    "channel": "chat",
                    "state": "l1_solving",
                    "level": "level1",
                    "complexity": "low",
                    "urgency": "high",
                    "priority": "P2",
                    "outcome": None,
                    "playbook_position": 1,
                    "customer": {"name": "Ana Pérez", "email": "ana@example.com"},
                    "requester_id": 3,
                    "assignee_id": 7,
                    "version": 5,
                    "workflow": {"name": "support", "version": "1.0.0", "hash": "262c521d3f0e4b7a"},
                    "created_at": "2026-11-24T14:00:00Z",
                    "received_at": "2026-11-24T14:00:00Z",
                    "updated_at": "2026-11-24T15:00:00Z",
                    "sla": {"first_response": _FR_CLOCK, "resolution": _NO_TARGET},
                }
            ]
        }
    )

    id: int
    account: str
    kind: str
    category: str
    subject: str
    description: str
    channel: str
    state: str
    level: Literal["level1", "level2", "level3", "administrative"] | None
    complexity: str | None
    urgency: str | None
    priority: str | None
    outcome: str | None
    playbook_position: int = Field(description="Playbook steps recorded so far")
    customer: Customer | None
    requester_id: int | None = Field(
        description="The user who asked (a customer sees only the tickets they asked)."
    )
    assignee_id: int | None = Field(
        description="The user working on it; null: in the pool (`PUT …/assignee`, `…/take`)."
    )
    version: int
    workflow: WorkflowRef
    created_at: datetime
    received_at: datetime
    updated_at: datetime
    sla: dict[str, SlaClock]

    @classmethod
    def of(cls, t: TicketView) -> TicketPublic:
        return cls.model_construct(
            id=t.id,
            account=t.account,
            kind=t.kind,
            category=t.category,
            subject=t.subject,
            description=t.description,
            channel=t.channel,
            state=t.state,
            level=t.level,
            complexity=t.complexity,
            urgency=t.urgency,
            priority=t.priority,
            outcome=t.outcome,
            playbook_position=t.playbook_position,
            customer=None
            if t.customer_name is None
            else Customer.model_construct(name=t.customer_name, email=t.customer_email),
            requester_id=t.requester_id,
            assignee_id=t.assignee_id,
            version=t.version,
            workflow=WorkflowRef.model_construct(
                name=t.workflow, version=t.workflow_version, hash=t.definition_hash
            ),
            created_at=t.created_at,
            received_at=t.received_at,
            updated_at=t.updated_at,
            sla={k: SlaClock.model_construct(**v) for k, v in t.sla.items()},
        )


class TicketPage(BaseModel):
    items: list[TicketPublic]
    next_cursor: str | None


class FireRequest(BaseModel):
    model_config = _examples(
        {"note": "Playbook exhausted; customer prefers a call", "data": {"channel": "phone"}},
        {"data": {"solvable": True, "estimate_hours": 6, "approach": "custom"}},
    )

    note: Text | None = Field(default=None, max_length=20_000)
    visibility: Visibility | None = Field(
        default=None,
        description="Who reads `note`: `internal` (staff; the default for staff) or `public` "
        "(the requester too; a customer's notes are always public).",
    )
    data: JsonObject = Field(default_factory=dict)


class ResponseCreate(BaseModel):
    model_config = _examples(
        {"body": "We are looking into it and will call you at 15:00."},
        {"body": "Checked with billing: the charge is a duplicate.", "visibility": "internal"},
    )

    body: Text = Field(min_length=1, max_length=20_000)
    visibility: Visibility = Field(
        default="public",
        description="`public`: a reply to the customer (stops the first-response clock); "
        "`internal`: a note among staff (stops nothing).",
    )


class AssigneeSet(BaseModel):
    model_config = _examples({"assignee_id": 7}, {"assignee_id": None})

    assignee_id: int | None = Field(
        ge=1,
        le=2**31 - 1,
        description="A user who holds a role that acts at the ticket's state; null: the pool.",
    )


class CommentCreate(BaseModel):
    model_config = _examples(
        {"body": "Here is the screenshot you asked for: the error says E-1042."},
        {"body": "Customer sounds upset; handle with care.", "visibility": "internal"},
    )

    body: Text = Field(min_length=1, max_length=20_000)
    visibility: Visibility | None = Field(
        default=None,
        description="A customer's comment is `public` (their own tickets only); staff's "
        "default to `internal`.",
    )


class PlaybookStepRequest(BaseModel):
    model_config = _examples({"outcome": "failed"})

    outcome: Literal["failed", "solved"]
    note: Text | None = Field(default=None, max_length=20_000)
    visibility: Visibility | None = Field(default=None, description="Of `note` (default internal).")


class ReasonPublic(BaseModel):
    guard: str
    message: str


_BLOCKED = (
    "playbook step 2 of 4 (check_lockout: Check for a lockout after failed attempts and lift "
    "it) not tried yet; every step must be tried in order before escalating"
)


class TriggerOption(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"trigger": "resolve", "dest": "resolved", "allowed": True, "reasons": []},
                {
                    "trigger": "escalate",
                    "dest": "l2_solving",
                    "allowed": False,
                    "reasons": [{"guard": "playbook_exhausted", "message": _BLOCKED}],
                },
            ]
        }
    )

    trigger: str
    dest: str
    allowed: bool
    reasons: list[ReasonPublic]

    @classmethod
    def of(cls, o: Option) -> TriggerOption:
        return cls.model_validate(o, from_attributes=True)


class EventPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 9,
                    "kind": "transition",
                    "trigger": "escalate",
                    "from_state": "l1_solving",
                    "to_state": "l2_solving",
                    "actor": "Camila Rojas",
                    "role": "l1_agent",
                    "note": "Playbook exhausted",
                    "data": {"channel": "phone"},
                    "changes": {"channel": "phone"},
                    "visibility": "internal",
                    "at": "2026-11-24T15:00:00Z",
                }
            ]
        }
    )

    seq: int
    kind: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    actor: str | None
    role: str | None
    note: str | None
    data: dict[str, Any]
    changes: dict[str, Any]
    visibility: Visibility = Field(description="Of `note`: who may read it.")
    at: datetime

    @classmethod
    def of(cls, e: EventView) -> EventPublic:
        return cls.model_validate(e, from_attributes=True)


# --- workflows and health --------------------------------------------------------------------
class WorkflowSummary(BaseModel):
    name: str
    version: str
    hash: str
    title: str
    states: int
    transitions: int


class WorkflowVersion(BaseModel):
    version: str
    hash: str
    first_seen: datetime


class WorkflowDetail(WorkflowSummary):
    versions: list[WorkflowVersion]
    definition: dict[str, Any]
    guard_sentences: list[list[str]] = Field(
        description="For each of `definition.transitions`, in order: its guards as the plain "
        "sentences a refusal is worded after (e.g. `a note is required: …`), hint included."
    )


class PublishedVersion(BaseModel):
    """A published version: 201 when this request published it, 200 when that very content
    was published before."""

    name: str
    version: str
    hash: str


class ValidationVerdict(PublishedVersion):
    """The definition is valid; ``publish`` says what publishing it would do."""

    publish: Literal["new", "already published"]


class AccountWorkflowChoice(BaseModel):
    model_config = _examples({"name": "support", "version": "1.1.0"}, {"name": "support"})

    name: Text = Field(min_length=1, max_length=64)
    version: Text | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Human version or hash; absent or null: the latest published, whichever "
        "that is when a ticket is created.",
    )


class AccountWorkflow(PublishedVersion):
    """The version of a workflow this account's new tickets get; tickets keep theirs."""

    chosen: bool = Field(description="false: the account follows the latest published version")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]


# --- the designer's questions: diff, migration, what-if ---------------------------------------
class DiffEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str = Field(description="state name, `trigger@source`, `trigger@source guard`, ...")
    before: Any = None
    after: Any = None


class DiffSection(BaseModel):
    added: list[DiffEntry]
    removed: list[DiffEntry]
    changed: list[DiffEntry]


class VersionRef(BaseModel):
    version: str
    hash: str


class WorkflowDiff(BaseModel):
    name: str
    from_: VersionRef = Field(alias="from")
    to: VersionRef
    states: DiffSection
    transitions: DiffSection
    guards: DiffSection
    roles: DiffSection
    sla: DiffSection
    calendar: DiffSection
    other: list[str] = Field(description="other top-level fields that differ")


StateName = Annotated[str, Field(min_length=1, max_length=60), AfterValidator(_no_nul)]


class MigrationRequest(BaseModel):
    model_config = _examples(
        {
            "workflow": "support",
            "from_version": "1.0.0",
            "to_version": "1.1.0",
            "state_map": {"l3_solution": "l3_assessment"},
            "dry_run": True,
        }
    )

    workflow: Text = Field(default="support", min_length=1, max_length=64)
    from_version: Text = Field(min_length=1, max_length=64)
    to_version: Text = Field(min_length=1, max_length=64)
    state_map: dict[StateName, StateName] = Field(
        default_factory=dict,
        max_length=200,
        description="state of from_version -> state of to_version; a state not named keeps "
        "its name",
    )
    dry_run: bool = Field(default=True, description="only plan (the default); false: apply")


class MigrationItemPublic(BaseModel):
    ticket: int
    from_state: str
    to_state: str
    can_move: bool
    reason: str | None = Field(description="why it cannot move")
    moved: bool


class MigrationPublic(BaseModel):
    workflow: str
    from_: VersionRef = Field(alias="from")
    to: VersionRef
    dry_run: bool
    movable: int
    moved: int
    refused: int
    items: list[MigrationItemPublic]


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Text | None = Field(
        default=None, max_length=64, description="a published version (human version or hash)"
    )
    yaml: Text | None = Field(
        default=None, max_length=100_000, description="or the definition's YAML text"
    )


class WhatIfRequest(BaseModel):
    model_config = _examples(
        {
            "workflow": "support",
            "candidate": {"version": "1.1.0"},
            "from": "2026-11-01T00:00:00Z",
            "to": "2026-12-01T00:00:00Z",
        }
    )

    workflow: Text = Field(default="support", min_length=1, max_length=64)
    candidate: Candidate
    from_: AwareDatetime | None = Field(
        default=None, alias="from", description="tickets received from (default: 30 days ago)"
    )
    to: AwareDatetime | None = Field(default=None, description="... until, excluded (default: now)")


class AttainmentPublic(BaseModel):
    met: int
    breached: int
    open: int
    share_met: float | None = Field(description="met / (met + breached); null when none")


class WhatIfSide(BaseModel):
    label: str
    versions: list[str]
    tickets: int
    first_response: AttainmentPublic
    resolution: AttainmentPublic
    breaches_by_priority: dict[str, int]
    median_first_response_business_seconds: float | None
    not_replayed: list[dict[str, Any]]


class Refused(BaseModel):
    ticket: int
    seq: int
    at: datetime
    event: str
    from_state: str | None
    guard: str
    message: str


class Window(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime


class WhatIfPublic(BaseModel):
    account: str
    workflow: str
    window: Window
    evaluated_at: datetime
    current: WhatIfSide
    candidate: WhatIfSide
    refused: list[Refused]
    refused_total: int
