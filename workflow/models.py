"""SQLModel tables: accounts, tickets, their append-only history, definitions, tokens.

Instants are stored in UTC (:class:`UTCDateTime` keeps them timezone-aware on every backend).
The hot path (firing a trigger) uses these tables through SQLAlchemy Core statements prepared
once per dialect (:mod:`workflow.prepared`); the ORM serves the colder paths.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

__all__ = [
    "Account",
    "AccountUser",
    "AccountWorkflow",
    "ApiToken",
    "DefinitionVersion",
    "IdempotencyRecord",
    "OutboxFloor",
    "OutboxSequence",
    "StateCount",
    "Ticket",
    "TicketEvent",
    "UTCDateTime",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out; naive values are refused."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: instants must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite: process_bind_param / process_result_value and the dialect's own DATETIME
    # processors (its default storage format, ``fromisoformat``) as one function each - the
    # same values, without three Python calls per value (the hot path binds and reads ~14
    # instants per unit of work). tests/test_prepared.py holds them equal to the composed ones.
    def bind_processor(self, dialect: sa.Dialect) -> Any:
        composed = super().bind_processor(dialect)
        if not _default_sqlite_datetime(self, dialect):
            return composed

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: instants must be timezone-aware")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return _isoformat(value.replace(tzinfo=None), " ", "microseconds")

        return process

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        composed: Any = super().result_processor(dialect, coltype)
        if not _default_sqlite_datetime(self, dialect):
            return composed
        parse = datetime.fromisoformat

        def process(value: Any) -> Any:
            if value is None:
                return None
            if value.__class__ is not str:
                return composed(value)  # (whatever the composed processors make of it)
            got = parse(value)
            return got.replace(tzinfo=UTC) if got.tzinfo is None else got.astimezone(UTC)

        return process


_SQLITE_DATETIME_FORMAT = sqlite.DATETIME._storage_format
_isoformat = datetime.isoformat  # (the format: years 0001-9999, microseconds always shown)


def _default_sqlite_datetime(t: UTCDateTime, dialect: sa.Dialect) -> bool:
    """Whether ``t`` (as adapted to ``dialect``) is stored by SQLite's DATETIME in its default
    text format."""
    if dialect.name != "sqlite":
        return False
    impl: Any = t.impl_instance
    return (
        isinstance(impl, sqlite.DATETIME)
        and impl._storage_format == _SQLITE_DATETIME_FORMAT
        and impl._reg is None
        and type(impl).bind_processor is sqlite.DATETIME.bind_processor
        and type(impl).result_processor is sqlite.DATETIME.result_processor
    )


def _utc(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _json() -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON)


class Account(SQLModel, table=True):
    """A tenant and its settings (the workflow version its new tickets get is in
    ``account_workflow``)."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=200)
    created_at: datetime = _utc()
    calendar: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    """The business calendar of the account's new tickets (a ``CalendarSpec``, its country
    holidays resolved to dates); None: the workflow definition's."""
    last_ticket_number: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """The number the account's newest ticket got (``ticket.number``); raised in the
    transaction that creates a ticket, so its row lock orders the account's creates."""
    last_user_number: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """The number the account's newest user got (``account_user.number``)."""
    last_token_number: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """The number the account's newest token got (``api_token.number``)."""
    last_webhook_number: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """The number the account's newest webhook subscription got (``webhook_subscription.number``;
    never given again, so neither is a ``webhook-id``)."""


class AccountUser(SQLModel, table=True):
    """A person of an account: a requester (customer) or a member of staff, with the roles of
    the workflow they hold. ``org_wide``: a requester who sees every ticket of the account."""

    __tablename__ = "account_user"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "email", name="uq_account_user_email"),
        sa.Index("uq_account_user_number", "account_id", "number", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    """Internal (tokens point at it); the API's user id is ``number``."""
    account_id: int = Field(foreign_key="account.id", index=True)
    number: int
    """The user's number within the account (1, 2, 3, ...): the id the API shows, and what a
    ticket's ``requester_id`` / ``assignee_id`` and its history hold."""
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    org_wide: bool = False
    created_at: datetime = _utc()


class DefinitionVersion(SQLModel, table=True):
    """A published definition: immutable once stored. ``(name, version)`` names one content
    (publishing another under it is refused); ``seq`` orders publications (the newest of a
    name is its latest)."""

    __tablename__ = "definition_version"
    __table_args__ = (sa.Index("ix_definition_version_name_seq", "name", "seq"),)

    hash: str = Field(primary_key=True, max_length=32)
    name: str = Field(index=True, max_length=64)
    version: str = Field(max_length=64)
    source: str
    """The YAML text, so tickets on an old version keep working after the file changes."""
    created_at: datetime = _utc()
    seq: int = Field(default=0)
    """Publication order, over every name (1, 2, ...)."""


class AccountWorkflow(SQLModel, table=True):
    """The version of a workflow an account's new tickets get (absent: the latest published).
    One row per (account, workflow name); account settings of other kinds live elsewhere."""

    __tablename__ = "account_workflow"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    workflow: str = Field(primary_key=True, max_length=64)
    definition_hash: str = Field(foreign_key="definition_version.hash", max_length=32)
    updated_at: datetime = _utc()


class Ticket(SQLModel, table=True):
    """A ticket. ``id`` is internal (foreign keys, history, idempotency); what the API calls
    the ticket's id is ``number``, its number within its account (1, 2, 3, ...)."""

    __table_args__ = (
        sa.Index("uq_ticket_account_number", "account_id", "number", unique=True),
        sa.Index("ix_ticket_account_state", "account_id", "state", "id"),
        sa.Index("ix_ticket_account_level_priority", "account_id", "level", "priority"),
        sa.Index("ix_ticket_account_due", "account_id", "sla_due_at"),
        sa.Index("ix_ticket_sla_due", "sla_due_at"),
        sa.Index("ix_ticket_account_risk", "account_id", "sla_risk_at"),
        sa.Index("ix_ticket_account_breached", "account_id", "sla_breached_at"),
        sa.Index("ix_ticket_state_entered", "state", "state_entered_at"),
        # the work queue (workflow/queries.py): open tickets not breached, by due instant ...
        sa.Index(
            "ix_ticket_open_queue",
            "account_id",
            "priority",
            "sla_due_at",
            "received_at",
            "id",
            sqlite_where=sa.text("resolved_at IS NULL AND sla_breached_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL AND sla_breached_at IS NULL"),
        ),
        # ... and open tickets with a breach, most overdue first
        sa.Index(
            "ix_ticket_open_breached",
            "account_id",
            "priority",
            "sla_breached_at",
            "received_at",
            "id",
            sqlite_where=sa.text("resolved_at IS NULL AND sla_breached_at IS NOT NULL"),
            postgresql_where=sa.text("resolved_at IS NULL AND sla_breached_at IS NOT NULL"),
        ),
        # a requester's own tickets (workflow.access)
        sa.Index("ix_ticket_account_requester", "account_id", "requester_id", "id"),
        # "my queue" (workflow.queries: ?assignee=)
        sa.Index("ix_ticket_account_assignee", "account_id", "assignee_id", "id"),
        sa.Index(
            "ix_ticket_account_breached_id",
            "account_id",
            "id",
            sqlite_where=sa.text("sla_breached_at IS NOT NULL"),
            postgresql_where=sa.text("sla_breached_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    number: int
    """The ticket's number within its account, in the order the account's tickets were
    created (the id routes, bodies and events show)."""
    workflow: str = Field(max_length=64)
    definition_hash: str = Field(foreign_key="definition_version.hash", max_length=32)
    subject: str = Field(max_length=300)
    description: str = ""
    customer_name: str | None = None
    customer_email: str | None = None
    requester_id: int | None = None
    """The person who asked (the ``number`` of an ``account_user`` of the ticket's account;
    no database foreign key, so adding it never rebuilt the ticket table on SQLite): a
    requester sees only their own tickets (workflow.access)."""
    # --- derived from history (workflow.history.TicketState) ---
    kind: str = Field(max_length=40)
    category: str = Field(max_length=60)
    channel: str = Field(max_length=40)
    complexity: str | None = Field(default=None, max_length=20)
    urgency: str | None = Field(default=None, max_length=20)
    priority: str | None = Field(default=None, max_length=20)
    state: str = Field(max_length=60)
    level: str | None = Field(default=None, max_length=20)
    previous_state: str | None = Field(default=None, max_length=60)
    playbook_position: int = 0
    outcome: str | None = Field(default=None, max_length=40)
    received_at: datetime = _utc()
    state_entered_at: datetime = _utc()
    first_response_at: datetime | None = _utc(default=None)
    resolved_at: datetime | None = _utc(default=None)
    sla_state: dict[str, Any] = _json()
    sla_due_at: datetime | None = _utc(default=None)
    sla_risk_at: datetime | None = _utc(default=None)
    sla_breached_at: datetime | None = _utc(default=None)
    version: int = 1
    assignee_id: int | None = None
    """The ``account_user`` (its ``number``) working on it; None: in the pool
    (workflow.assignment)."""
    # --- bookkeeping ---
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class TicketEvent(SQLModel, table=True):
    """Append-only history, and the transactional outbox (:mod:`workflow.outbox`): ``seq`` is
    the ticket's version after the event; ``sequence`` numbers the row as the account's
    outgoing event. The unique index on (account_id, sequence) is the account's index of its
    history too (rows written before the outbox existed have no ``sequence``), so sending an
    event writes no B-tree that recording it does not."""

    __tablename__ = "ticket_event"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "seq", name="uq_ticket_event_seq"),
        sa.Index("uq_ticket_event_account_sequence", "account_id", "sequence", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id")
    account_id: int = Field(foreign_key="account.id")
    seq: int
    sequence: int | None = None
    """The event's number among the account's outgoing events: strictly increasing, gap-free,
    in commit order (None only on rows written before the outbox, revision 0007)."""
    unit_version: int | None = None
    """The ticket's version after the unit of work that wrote the row: the outgoing event
    carries the ticket at that version (a unit's events all carry the ticket after it)."""
    kind: str = Field(max_length=20)
    trigger: str | None = Field(default=None, max_length=60)
    from_state: str | None = Field(default=None, max_length=60)
    to_state: str | None = Field(default=None, max_length=60)
    actor: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=40)
    note: str | None = None
    data: dict[str, Any] = _json()
    changes: dict[str, Any] = _json()
    response: bool = False
    visibility: str = Field(
        default="internal", max_length=10, sa_column_kwargs={"server_default": "internal"}
    )
    """``public`` (the requester sees the note) or ``internal`` (staff only)."""
    at: datetime = _utc()


class StateCount(SQLModel, table=True):
    """How many tickets of an account sit in each state (and how many of them have a breached
    SLA clock), kept in the same transaction as the tickets, so the live view never counts a
    million rows. Spread over ``SHARDS`` rows per state (by ticket id) so concurrent writers on
    PostgreSQL rarely wait for the same row; readers sum the shards."""

    __tablename__ = "state_count"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    workflow: str = Field(primary_key=True, max_length=64)
    state: str = Field(primary_key=True, max_length=60)
    shard: int = Field(primary_key=True)
    tickets: int = 0
    breached: int = 0


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    __table_args__ = (sa.Index("uq_api_token_account_number", "account_id", "number", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    """Internal; the API's token id is ``number``."""
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    """None for the platform's tokens (the admin's, designers')."""
    number: int
    """The token's number within its account (1, 2, 3, ...), or among the platform's tokens:
    the id the API shows."""
    user_id: int | None = Field(default=None, foreign_key="account_user.id", index=True)
    """The person the token acts for; None for an integration's token (and the admin's)."""
    role: str = Field(max_length=40)
    name: str = Field(max_length=200)
    """The token's label; for an integration's token, the integration's name."""
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _utc()
    expires_at: datetime | None = _utc(default=None)
    revoked_at: datetime | None = _utc(default=None)
    last_used_at: datetime | None = _utc(default=None)
    """Refreshed at most once a minute (a write per request would cost every request)."""


class IdempotencyRecord(SQLModel, table=True):
    """A request already applied: a retry with the same key returns the ticket at ``version``."""

    __tablename__ = "idempotency_record"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    fingerprint: str = Field(max_length=64)
    ticket_id: int = Field(foreign_key="ticket.id")
    version: int
    created_at: datetime = _utc()


class OutboxSequence(SQLModel, table=True):
    """The last outbox ``sequence`` given out per account, on PostgreSQL. A unit of work raises
    it in its own transaction, so the row lock orders the account's writers: an event with a
    smaller sequence always commits before one with a larger (see :mod:`workflow.outbox`).
    SQLite serialises writers anyway and takes the next number from ``ticket_event``."""

    __tablename__ = "outbox_sequence"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    last: int = 0


class OutboxFloor(SQLModel, table=True):
    """The highest ``sequence`` of an account past the events' retention: the stream resumes
    only after it (an older ``Last-Event-ID`` is told to resynchronise). The events stay in
    the history; only this mark moves (``outbox.prune``)."""

    __tablename__ = "outbox_floor"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    sequence: int = 0


class WebhookSubscription(SQLModel, table=True):
    """Where an account's events are delivered (see :mod:`workflow.webhooks`). The signing
    secret is not stored: it is derived from the server's webhooks key and ``secret_salt``."""

    __tablename__ = "webhook_subscription"
    __table_args__ = (
        sa.Index("uq_webhook_subscription_account_number", "account_id", "number", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    """Internal (deliveries point at it); the API's subscription id is ``number``."""
    account_id: int = Field(foreign_key="account.id", index=True)
    number: int
    """The subscription's number within its account (1, 2, 3, ...): the id the API shows and
    the first part of its deliveries' ``webhook-id``."""
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    description: str = Field(default="", max_length=500)
    active: bool = True
    secret_salt: str = Field(max_length=64)
    key_check: str = Field(max_length=16)
    """Which webhooks key the secret was derived from (a fingerprint, not the key)."""
    cursor: int = 0
    """The last outbox sequence of the account turned into deliveries (or skipped)."""
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: the signed payload, its state and its retry clock."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "sequence", name="uq_webhook_delivery_sequence"),
        sa.Index("ix_webhook_delivery_head", "subscription_id", "status", "sequence"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="webhook_subscription.id")
    sequence: int
    type: str = Field(max_length=40)
    payload: str
    """The JSON body, exactly as signed and sent (identical on every attempt)."""
    status: str = Field(max_length=20)
    """``pending``, ``delivered`` or ``dead``."""
    attempts: int = 0
    event_at: datetime = _utc()
    """When the event's change committed (the start of its delivery lag)."""
    window_start: datetime = _utc()
    """Retries run until this plus the retry window (reset by a redelivery)."""
    next_attempt_at: datetime | None = _utc(default=None)
    delivered_at: datetime | None = _utc(default=None)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt of a delivery: the delivery log."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_delivery.id", index=True)
    number: int
    at: datetime = _utc()
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = Field(default=None, max_length=500)
