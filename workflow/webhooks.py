"""Webhook subscriptions, their signing secrets, and the delivery log.

A subscription names a URL and the event types it wants (``["*"]``: all, also types added
later). Every event of the account committed after the subscription was created (or last
resumed) becomes one *delivery* per subscription, sent by the dispatcher
(:mod:`workflow.webhooks_dispatch`) as the Standard Webhooks specification says: the body is
the event as the stream shows it, ``webhook-id`` is ``msg_<subscription>_<sequence>`` (the
same on every retry and redelivery), and ``webhook-signature`` is made by the
``standardwebhooks`` package with the subscription's secret.

**Secrets are never stored.** A subscription keeps a random ``secret_salt``; its secret is
``whsec_`` + base64(HMAC-SHA256(webhooks key, salt)), where the *webhooks key* is a server
setting (``TIERFLOW_WEBHOOKS_KEY``, else a key file created on first use beside the SQLite
database, see :func:`load_key`). So the database alone - a dump, a backup, a read-only SQL
injection - cannot sign a delivery for any account. ``key_check`` (a fingerprint of the key,
not the key) lets a dispatcher holding a different key refuse to send rather than send
signatures no receiver accepts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import outbox
from .errors import InputError, NotFound, TierflowError
from .models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from .records import take_number
from .webhooks_urls import Resolver, check_url

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = [
    "ALL",
    "CATALOGUE",
    "Attempt",
    "Delivery",
    "KeyMismatch",
    "Subscription",
    "Webhooks",
    "default_key_path",
    "key_check",
    "load_key",
    "prune",
    "secret_for",
    "webhook_id",
]

WS = WebhookSubscription.__table__  # type: ignore[attr-defined]
WD = WebhookDelivery.__table__  # type: ignore[attr-defined]
WA = WebhookAttempt.__table__  # type: ignore[attr-defined]

ALL = "*"
CATALOGUE = sorted(set(outbox.TYPES.values()))
"""The event types a subscription may name."""
STATUSES = ("pending", "delivered", "dead")
MIN_KEY_LENGTH = 32
MAX_DESCRIPTION = 500
_SECRET_INFO = b"tierflow webhook signing secret\x00"
_CHECK_INFO = b"tierflow webhooks key check"


class KeyMismatch(TierflowError):
    """This server's webhooks key is not the one a subscription's secret was derived from."""


# --- the webhooks key and the secrets derived from it ----------------------------------------
def default_key_path(database_url: str) -> Path:
    """Beside a SQLite database file (``tierflow.db`` -> ``tierflow.db.webhooks-key``); for any
    other database ``.tierflow/webhooks-key`` in the working directory."""
    u = sa.engine.make_url(database_url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(f"{u.database}.webhooks-key")
    return Path(".tierflow") / "webhooks-key"


def load_key(database_url: str, *, key: str | None = None, key_file: str | None = None) -> bytes:
    """The webhooks key: ``key`` when given (``TIERFLOW_WEBHOOKS_KEY``, at least 32
    characters), else the content of ``key_file`` (default :func:`default_key_path`), which is
    created - 32 random bytes, base64, mode 0600 - when it does not exist yet. Creation is
    atomic (a hard link), so processes starting together end up with the same key."""
    if key:
        if len(key) < MIN_KEY_LENGTH:
            raise InputError(
                "TIERFLOW_WEBHOOKS_KEY", f"must be at least {MIN_KEY_LENGTH} characters long"
            )
        return key.encode()
    path = Path(key_file) if key_file else default_key_path(database_url)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        try:
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        finally:
            tmp.unlink()
    text = path.read_text().strip()
    if len(text) < MIN_KEY_LENGTH:
        raise InputError("webhooks key file", f"{path} holds fewer than {MIN_KEY_LENGTH} chars")
    return text.encode()


def key_check(key: bytes) -> str:
    return hmac.new(key, _CHECK_INFO, hashlib.sha256).hexdigest()[:16]


def secret_for(key: bytes, salt: str) -> str:
    """The subscription's signing secret (``whsec_`` + base64 of 32 bytes)."""
    raw = hmac.new(key, _SECRET_INFO + bytes.fromhex(salt), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def webhook_id(number: int, sequence: int) -> str:
    """The ``webhook-id`` of an event for a subscription (its number in the account): identical
    on every attempt, never another subscription's (numbers are not given twice)."""
    return f"msg_{number}_{sequence}"


# --- views ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    account: str
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    """The event's ``sequence`` in its account (a subscription gets each event once), so an
    id says nothing of other accounts' traffic; the row's own key stays internal."""
    subscription_id: int
    sequence: int
    type: str
    webhook_id: str
    status: str
    attempts: int
    event_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[Attempt]


def _events(events: Sequence[str] | None) -> list[str]:
    if events is None:
        return [ALL]
    if not events:
        raise InputError("events", f"name at least one event type, or {ALL!r} for all")
    out: list[str] = []
    for i, e in enumerate(events):
        if e != ALL and e not in CATALOGUE:
            raise InputError(
                f"events.{i}", f"unknown event type {e!r}; known: {', '.join([ALL, *CATALOGUE])}"
            )
        if e not in out:
            out.append(e)
    return [ALL] if ALL in out else out


def _description(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InputError("description", f"at most {MAX_DESCRIPTION} characters")
    return text


def wants(events: Sequence[str], event_type: str) -> bool:
    return ALL in events or event_type in events


class Webhooks:
    """Subscriptions and the delivery log of one engine. Keyword arguments only; ``account``
    is an account slug, and another account's subscription is :class:`NotFound`."""

    def __init__(
        self,
        tf: Tierflow,
        key: bytes,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        self.tf = tf
        self.key = key
        self.allow_private = allow_private
        self.resolver = resolver

    def _url(self, url: str) -> str:
        return check_url(url, allow_private=self.allow_private, resolver=self.resolver)

    def create(
        self,
        *,
        account: str,
        url: str,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> tuple[Subscription, str]:
        """A new subscription, delivering the events committed from now on; returns it and its
        signing secret (the only time the secret is shown)."""
        account_id = self.tf.account_id(account)
        salt = secrets.token_hex(32)
        row: dict[str, Any] = {
            "account_id": account_id,
            "url": self._url(url),
            "events": _events(events),
            "description": _description(description),
            "active": True,
            "secret_salt": salt,
            "key_check": key_check(self.key),
            "created_at": self.tf.clock(),
        }
        row["updated_at"] = row["created_at"]
        with self.tf.db.write() as conn:
            row["number"] = take_number(conn, account_id, "last_webhook_number")
            row["cursor"] = outbox.highest(conn, account_id)
            row["id"] = conn.execute(sa.insert(WS).returning(WS.c.id), row).scalar_one()
        return self._view(account, row), secret_for(self.key, salt)

    def all(self, *, account: str) -> list[Subscription]:
        account_id = self.tf.account_id(account)
        with self.tf.db.read() as conn:
            rows = conn.execute(
                sa.select(WS).where(WS.c.account_id == account_id).order_by(WS.c.number)
            ).mappings()
            return [self._view(account, r) for r in rows]

    def get(self, *, account: str, subscription_id: int) -> Subscription:
        with self.tf.db.read() as conn:
            return self._view(account, self._row(conn, account, subscription_id))

    def update(
        self,
        *,
        account: str,
        subscription_id: int,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        active: bool | None = None,
    ) -> Subscription:
        """Change what is given. Pausing (``active=False``) stops new deliveries; resuming
        delivers the events committed from then on (those of the pause are skipped); deliveries
        already made keep their retries while paused, and are attempted after resuming."""
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = self._url(url)
        if events is not None:
            changes["events"] = _events(events)
        if description is not None:
            changes["description"] = _description(description)
        with self.tf.db.write() as conn:
            row = self._row(conn, account, subscription_id, lock=True)
            if active is not None and active != row["active"]:
                changes["active"] = active
                if active:
                    changes["cursor"] = outbox.highest(conn, row["account_id"])
            if changes:
                changes["updated_at"] = self.tf.clock()
                conn.execute(sa.update(WS).where(WS.c.id == row["id"]).values(changes))
            return self._view(account, {**row, **changes})

    def delete(self, *, account: str, subscription_id: int) -> None:
        """Remove the subscription and its delivery log; nothing more is sent to it."""
        with self.tf.db.write() as conn:
            sid = self._row(conn, account, subscription_id, lock=True)["id"]
            ids = sa.select(WD.c.id).where(WD.c.subscription_id == sid)
            conn.execute(sa.delete(WA).where(WA.c.delivery_id.in_(ids)))
            conn.execute(sa.delete(WD).where(WD.c.subscription_id == sid))
            conn.execute(sa.delete(WS).where(WS.c.id == sid))

    def deliveries(
        self,
        *,
        account: str,
        subscription_id: int,
        status: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Delivery]:
        """The subscription's deliveries, newest event first, each with its attempts."""
        if status is not None and status not in STATUSES:
            raise InputError("status", f"unknown status {status!r}; known: {', '.join(STATUSES)}")
        with self.tf.db.read() as conn:
            sub = self._row(conn, account, subscription_id)
            q = sa.select(WD).where(WD.c.subscription_id == sub["id"])
            if status is not None:
                q = q.where(WD.c.status == status)
            if before is not None:
                q = q.where(WD.c.sequence < before)
            rows = list(conn.execute(q.order_by(WD.c.sequence.desc()).limit(limit)).mappings())
            return _deliveries(conn, sub["number"], rows)

    def delivery(self, *, account: str, subscription_id: int, delivery_id: int) -> Delivery:
        with self.tf.db.read() as conn:
            sub = self._row(conn, account, subscription_id)
            row = self._delivery_row(conn, sub["id"], delivery_id)
            return _deliveries(conn, sub["number"], [row])[0]

    def redeliver(self, *, account: str, subscription_id: int, delivery_id: int) -> Delivery:
        """Send a delivery again now (same body, same ``webhook-id``): a delivered or
        dead-lettered one with a fresh retry window, a pending one without waiting for its
        backoff. It goes before the subscription's later deliveries."""
        now = self.tf.clock()
        with self.tf.db.write() as conn:
            sub = self._row(conn, account, subscription_id, lock=True)
            row = self._delivery_row(conn, sub["id"], delivery_id)
            values: dict[str, Any] = {"next_attempt_at": now}
            if row["status"] != "pending":
                values.update(status="pending", window_start=now)
            conn.execute(sa.update(WD).where(WD.c.id == row["id"]).values(values))
            row = self._delivery_row(conn, sub["id"], delivery_id)
            return _deliveries(conn, sub["number"], [row])[0]

    # --- rows ------------------------------------------------------------------------------
    def _row(
        self, conn: Connection, account: str, subscription_id: int, *, lock: bool = False
    ) -> dict[str, Any]:
        account_id = self.tf.account_id(account)
        q = sa.select(WS).where(WS.c.account_id == account_id, WS.c.number == subscription_id)
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFound("webhook", subscription_id)
        return dict(row)

    @staticmethod
    def _delivery_row(conn: Connection, subscription_id: int, delivery_id: int) -> dict[str, Any]:
        row = (
            conn.execute(
                sa.select(WD).where(
                    WD.c.subscription_id == subscription_id, WD.c.sequence == delivery_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound("delivery", delivery_id)
        return dict(row)

    @staticmethod
    def _view(account: str, r: Any) -> Subscription:
        return Subscription(
            id=r["number"],
            account=account,
            url=r["url"],
            events=list(r["events"]),
            description=r["description"],
            active=bool(r["active"]),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )


def prune(tf: Tierflow, *, before: datetime) -> int:
    """Forget delivered and dead-lettered deliveries (with their attempts) of events older than
    ``before``; returns how many. Pending ones stay, whatever their age."""
    old = sa.and_(WD.c.status != "pending", WD.c.event_at < before)
    with tf.db.write() as conn:
        conn.execute(sa.delete(WA).where(WA.c.delivery_id.in_(sa.select(WD.c.id).where(old))))
        return int(conn.execute(sa.delete(WD).where(old)).rowcount)


def _deliveries(conn: Connection, number: int, rows: Sequence[Any]) -> list[Delivery]:
    """``rows`` of the subscription numbered ``number`` in its account, with their attempts."""
    logs: dict[int, list[Attempt]] = {r["id"]: [] for r in rows}
    if logs:
        for a in conn.execute(
            sa.select(WA).where(WA.c.delivery_id.in_(list(logs))).order_by(WA.c.id)
        ).mappings():
            logs[a["delivery_id"]].append(
                Attempt(a["number"], a["at"], a["status_code"], a["latency_ms"], a["error"])
            )
    return [
        Delivery(
            id=r["sequence"],
            subscription_id=number,
            sequence=r["sequence"],
            type=r["type"],
            webhook_id=webhook_id(number, r["sequence"]),
            status=r["status"],
            attempts=r["attempts"],
            event_at=r["event_at"],
            next_attempt_at=r["next_attempt_at"] if r["status"] == "pending" else None,
            delivered_at=r["delivered_at"],
            last_status_code=r["last_status_code"],
            last_error=r["last_error"],
            log=logs[r["id"]],
        )
        for r in rows
    ]
