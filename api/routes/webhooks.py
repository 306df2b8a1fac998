"""Webhook subscriptions and their delivery log (supervisor or platform admin).

Thin routes over :class:`workflow.webhooks.Webhooks`; the dispatcher that sends the deliveries
runs inside ``serve`` (``api.app``) or as ``tierflow webhooks dispatch``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from workflow import Forbidden
from workflow.webhooks import ALL, CATALOGUE, Webhooks

from ..deps import ScopeDep
from ..schemas import Text

router = APIRouter(prefix="/v1/accounts/{acct}/webhooks", tags=["webhooks"])

EventType = Literal["*", "ticket.created", "ticket.transitioned", "ticket.updated",
                    "ticket.responded", "ticket.commented", "ticket.sla_breached",
                    "ticket.migrated", "ticket.assigned"]  # fmt: skip
assert sorted(EventType.__args__) == sorted([ALL, *CATALOGUE])  # type: ignore[attr-defined]
Url = Annotated[
    Text, Field(min_length=1, max_length=2000, examples=["https://hooks.example.com/tierflow"])
]
Events = Annotated[list[EventType], Field(min_length=1, max_length=10)]
Description = Annotated[Text, Field(max_length=500)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/tierflow",
                    "events": ["ticket.transitioned", "ticket.sla_breached"],
                    "description": "escalations to the on-call channel",
                }
            ]
        },
    )

    url: Url
    events: Events = Field(default_factory=lambda: [cast(EventType, ALL)])
    description: Description = ""


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})

    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    active: bool | None = None


class WebhookPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, `whsec_...`): shown only here"
    )


class WebhookList(BaseModel):
    items: list[WebhookPublic]


class AttemptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sequence: int
    type: str
    webhook_id: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    event_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[AttemptPublic]


class DeliveryList(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: int | None = Field(
        description="Pass as `?before=` for the next (older) page; null on the last page"
    )


def get_webhooks(request: Request, scope: ScopeDep) -> Webhooks:
    """The account's webhooks, for the admin or the account's supervisor only."""
    if not (scope.principal.is_admin or scope.role == "supervisor"):
        raise Forbidden(scope.role, "manage webhooks", ["admin", "supervisor"])
    webhooks: Webhooks = request.app.state.webhooks
    return webhooks


WebhooksDep = Annotated[Webhooks, Depends(get_webhooks)]
WebhookId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The subscription's id")]
DeliveryId = Annotated[
    int, Path(ge=1, le=2**31 - 1, description="The delivery's id: its event's sequence")
]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(
    body: WebhookCreate, scope: ScopeDep, webhooks: WebhooksDep, response: Response
) -> WebhookCreated:
    """Subscribe a URL to the account's events (from now on). The answer carries the signing
    secret, once (`Cache-Control: no-store`)."""
    sub, secret = webhooks.create(
        account=scope.account, url=body.url, events=body.events, description=body.description
    )
    response.headers["Location"] = f"/v1/accounts/{scope.account}/webhooks/{sub.id}"
    response.headers["Cache-Control"] = "no-store"
    return WebhookCreated(**WebhookPublic.model_validate(sub).model_dump(), secret=secret)


@router.get("", response_model=WebhookList)
def list_webhooks(scope: ScopeDep, webhooks: WebhooksDep) -> WebhookList:
    """The account's subscriptions (never their secrets)."""
    return WebhookList(
        items=[WebhookPublic.model_validate(s) for s in webhooks.all(account=scope.account)]
    )


@router.get("/{webhook_id}", response_model=WebhookPublic)
def get_webhook(webhook_id: WebhookId, scope: ScopeDep, webhooks: WebhooksDep) -> WebhookPublic:
    """One subscription."""
    return WebhookPublic.model_validate(
        webhooks.get(account=scope.account, subscription_id=webhook_id)
    )


@router.patch("/{webhook_id}", response_model=WebhookPublic)
def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, scope: ScopeDep, webhooks: WebhooksDep
) -> WebhookPublic:
    """Change the URL, the events or the description; pause (`active: false`) or resume.
    A resumed subscription gets the events committed from then on."""
    return WebhookPublic.model_validate(
        webhooks.update(
            account=scope.account,
            subscription_id=webhook_id,
            url=body.url,
            events=body.events,
            description=body.description,
            active=body.active,
        )
    )


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: WebhookId, scope: ScopeDep, webhooks: WebhooksDep) -> Response:
    """Remove the subscription and its delivery log."""
    webhooks.delete(account=scope.account, subscription_id=webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    webhook_id: WebhookId,
    scope: ScopeDep,
    webhooks: WebhooksDep,
    status: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> DeliveryList:
    """The delivery log, newest event first: each delivery with its attempts (instant,
    status code, latency, error)."""
    items = webhooks.deliveries(
        account=scope.account,
        subscription_id=webhook_id,
        status=status,
        limit=limit,
        before=before,
    )
    return DeliveryList(
        items=[DeliveryPublic.model_validate(d) for d in items],
        next_cursor=items[-1].sequence if len(items) == limit else None,
    )


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryPublic)
def get_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, scope: ScopeDep, webhooks: WebhooksDep
) -> DeliveryPublic:
    """One delivery with its attempts."""
    return DeliveryPublic.model_validate(
        webhooks.delivery(
            account=scope.account, subscription_id=webhook_id, delivery_id=delivery_id
        )
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryPublic,
)
def redeliver(
    webhook_id: WebhookId, delivery_id: DeliveryId, scope: ScopeDep, webhooks: WebhooksDep
) -> DeliveryPublic:
    """Send a delivery again now - same body, same `webhook-id` - with a fresh retry window
    (a dead letter, a delivered one a receiver lost, or a pending one without waiting)."""
    return DeliveryPublic.model_validate(
        webhooks.redeliver(
            account=scope.account, subscription_id=webhook_id, delivery_id=delivery_id
        )
    )
