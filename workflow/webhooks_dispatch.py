"""The webhook dispatcher: turns outbox events into deliveries and sends them, signed.

A pass (:meth:`Dispatcher.run_once`) takes every active subscription (several at a time, in a
small thread pool) and

1. *fans out*: the account's outbox events after the subscription's ``cursor`` become one
   ``pending`` delivery each (when the subscription wants their type), and the cursor moves
   past them - in one transaction, so an event becomes a delivery exactly once;
2. *attempts*: the subscription's pending delivery with the lowest sequence (its *head*) is
   sent when due, then the next, and so on: deliveries to one subscription are attempted in
   sequence order. A failed attempt (no 2xx in time: an error status, a redirect, a timeout,
   a refused address) is retried after an exponential backoff with jitter
   (:class:`RetrySchedule`: about 5 s, 20 s, 80 s, ... up to 6 h between attempts) until the
   retry window (24 h) is over; then the delivery is dead-lettered and the next one becomes
   the head, so a dead letter never blocks the rest.

Each attempt happens once:

- PostgreSQL: the attempt runs inside a transaction holding the subscription's row lock,
  taken with ``SELECT ... FOR UPDATE SKIP LOCKED``: any number of dispatchers (``serve``
  processes, hosts, ``tierflow webhooks dispatch`` runs) share the subscriptions, and a
  subscription being served by one is skipped by the others; the attempt is recorded in that
  same transaction.
- SQLite: one dispatcher per database - each pass first takes an exclusive, non-blocking
  ``flock`` on ``<database>.webhooks.lock``, so of several ``serve`` workers (processes) one
  runs a pass at a time, and the others skip it. The HTTP request is made outside any
  transaction (SQLite has one writer: a slow receiver must not hold it), and the result is
  recorded only if the delivery is still the one that was sent (same attempt count).

A subscription's due deliveries are sent back to back in *runs* (at most ``RUN`` of them on
PostgreSQL, ``RUN_SQLITE`` on SQLite, or ``RUN_SECONDS``, ending at the first failure), and a
run's results are recorded in one transaction (on PostgreSQL in one round trip: a
subscription's deliveries go out one at a time, so what recording each costs bounds their
rate) - the address is checked once per run. On SQLite that transaction also fans out the
events committed meanwhile: the database has one writer at a time, the API
commits group after group, and each turn this process gets (``Database.write``: writers of
the file take turns) should carry as much as it can. Delivery is at least once: a crash
between a receiver's answer and the commit of its run's record repeats those attempts, with
the same ``webhook-id`` (receivers deduplicate on it).

The dispatcher knows nothing of HTTP: it hands each signed :class:`Request` (the checked
address to connect to, the headers, the body) to the ``send`` callable it was given, which
answers a :class:`Sent` (status code, latency, error) - ``api.webhooks_http.HttpSender`` in
``serve`` and ``tierflow webhooks dispatch``.

Scheduling reads the engine's clock (injectable: tests move it instead of sleeping); the
``webhook-timestamp`` header is the wall-clock time of the attempt, which receivers check
against their own clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import standardwebhooks
from sqlalchemy.engine import Connection

from . import outbox
from .prepared import Prepared
from .webhooks import WA, WD, WS, Webhooks, key_check, secret_for, wants, webhook_id
from .webhooks_urls import Refused, Target, resolve

__all__ = ["Dispatcher", "Outcome", "PassResult", "Request", "RetrySchedule", "Send", "Sent"]

log = logging.getLogger("tierflow.webhooks")

# statements built once (building one costs about what running it does)
_ACTIVE = sa.select(WS.c.id).where(WS.c.active).order_by(WS.c.id)
_SUB = sa.select(WS).where(WS.c.id == sa.bindparam("sid"))
_SUB_LOCKED = _SUB.with_for_update(skip_locked=True)
_MARKS = sa.select(
    WS.c.id,
    sa.select(sa.func.max(outbox.E.c.sequence))
    .where(outbox.E.c.account_id == WS.c.account_id)
    .scalar_subquery(),
).where(WS.c.active)
_HEADS = (
    sa.select(WD)
    .where(WD.c.subscription_id == sa.bindparam("sid"), WD.c.status == "pending")
    .order_by(WD.c.sequence)
    .limit(sa.bindparam("n"))
)
_RECORD = Prepared(
    sa.update(WD)
    .where(
        WD.c.id == sa.bindparam("did"),
        WD.c.attempts == sa.bindparam("was"),
        WD.c.status == sa.literal_column("'pending'"),
    )
    .values(
        status=sa.bindparam("status"),
        attempts=sa.bindparam("number"),
        last_status_code=sa.bindparam("code"),
        last_error=sa.bindparam("error"),
        delivered_at=sa.func.coalesce(
            sa.bindparam("delivered", type_=WD.c.delivered_at.type), WD.c.delivered_at
        ),
        next_attempt_at=sa.bindparam("retry"),
    )
)
"""One attempt's result, if the delivery is still the one sent (same attempts, pending)."""
_LOG_KEYS = ("delivery_id", "number", "at", "status_code", "latency_ms", "error")
_LOG = Prepared(sa.insert(WA), keys=_LOG_KEYS)
_RECORDED = _RECORD.stmt.returning(WD.c.id).cte("recorded")
_RECORD_LOGGED = Prepared(
    sa.insert(WA)
    .from_select(
        list(_LOG_KEYS),
        sa.select(
            _RECORDED.c.id,
            sa.bindparam("number", type_=WA.c.number.type),
            sa.bindparam("at", type_=WA.c.at.type),
            sa.bindparam("code", type_=WA.c.status_code.type),
            sa.cast(sa.bindparam("latency"), WA.c.latency_ms.type),  # (a NULL stays typed)
            sa.bindparam("error", type_=WA.c.error.type),
        ),
    )
    .returning(WA.c.delivery_id)
)
"""PostgreSQL: :data:`_RECORD` and, if it matched, the attempt's log row - one statement
(``WITH recorded AS (UPDATE ... RETURNING id) INSERT INTO webhook_attempt SELECT ...``) that
answers the delivery's id when it was recorded; a run's statements go in one round trip."""
USER_AGENT = "tierflow-webhooks/1"
MAX_ERROR = 500
RUN = 50
"""Deliveries of one subscription sent back to back before their results are recorded, on
PostgreSQL (the subscription's row lock is held meanwhile)."""
RUN_SQLITE = 500
"""The same on SQLite, where a run's record waits for a turn of the database's single writer
(the API commits group after group): a turn should carry many deliveries."""
FAN_OUT = 500
"""Outbox events turned into deliveries at most per fan-out."""
RUN_SECONDS = 1.0
"""A run stops after this long (the address was checked at its start)."""
WATCH = 0.05
"""Seconds between two looks for new events while idle (:meth:`Dispatcher.run_forever`)."""


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """When a failed delivery is tried again: the n-th failure waits ``first * factor**(n-1)``
    (at most ``cap``), less a random part of up to ``jitter`` of it (so receivers recovering
    from an outage are not hit by every sender at once); a retry that would fall after
    ``window`` from the first attempt is not made: the delivery is dead-lettered."""

    first: timedelta = timedelta(seconds=5)
    factor: float = 4.0
    cap: timedelta = timedelta(hours=6)
    window: timedelta = timedelta(hours=24)
    jitter: float = 0.5

    def delay(self, failures: int, rng: random.Random) -> timedelta:
        base = min(self.first * self.factor ** (failures - 1), self.cap)
        return base * (1 - self.jitter * rng.random())

    def next_attempt(
        self, failures: int, now: datetime, window_start: datetime, rng: random.Random
    ) -> datetime | None:
        """The instant of the next attempt after ``failures`` failed ones, or ``None``: dead."""
        at = now + self.delay(failures, rng)
        return at if at <= window_start + self.window else None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt, as the metrics see it."""

    outcome: str
    """``delivered``, ``failed`` (a retry is scheduled) or ``dead`` (dead-lettered)."""
    event_type: str
    status_code: int | None
    latency_ms: float | None
    lag_seconds: float | None
    """For ``delivered``: from the event's commit to the receiver's 2xx."""


@dataclass
class PassResult:
    fanned_out: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: bool = False
    """True when another dispatcher held the database (SQLite)."""
    subscriptions: int = 0
    """Active subscriptions seen."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.dead

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


@dataclass(frozen=True, slots=True)
class Request:
    """One signed POST for the transport to make."""

    target: Target
    """The checked URL and the address to connect to (never a fresh DNS answer)."""
    headers: Mapping[str, str]
    """Content type, user agent and the Standard Webhooks headers (``host`` and
    ``content-length`` are the transport's)."""
    body: bytes


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of a :class:`Request`: the receiver's status code (``None`` when none came:
    refused, timed out, ...), the latency and, unless a 2xx, why it failed."""

    status_code: int | None
    latency_ms: float | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


Send = Callable[[Request], Sent]
"""The transport: makes one request, never raises for what the network or receiver did."""


class Dispatcher:
    """Sends the webhooks of one database through ``send``. ``run_once`` for one pass (cron),
    ``run_forever`` inside ``serve``. ``observer`` hears every attempt (metrics)."""

    def __init__(
        self,
        webhooks: Webhooks,
        *,
        send: Send,
        schedule: RetrySchedule | None = None,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        observer: Callable[[Outcome], None] | None = None,
        concurrency: int = 4,
        batch: int = 1000,
    ) -> None:
        self.webhooks = webhooks
        self.tf = webhooks.tf
        self.send = send
        self.schedule = schedule or RetrySchedule()
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.wall = wall
        self.observer = observer
        self.concurrency = concurrency
        self.batch = batch
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="tierflow-webhooks")
        self._local_lock = threading.Lock()
        self._pg = self.tf.db.engine.dialect.name == "postgresql"

    # --- passes ----------------------------------------------------------------------------
    def run_once(self) -> PassResult:
        """One pass over every active subscription: fan out new events, send what is due."""
        result = PassResult()
        with self._exclusive() as mine:
            if not mine:
                result.skipped = True
                return result
            with self.tf.db.read() as conn:
                ids = list(conn.execute(_ACTIVE).scalars())
            result.subscriptions = len(ids)
            for f in [self._pool.submit(self._serve, i, result) for i in ids]:
                f.result()
        return result

    def run_forever(
        self,
        stop: threading.Event,
        *,
        poll: float = 1.0,
        wake: threading.Event | None = None,
        watch: float = WATCH,
    ) -> None:
        """Pass after pass until ``stop`` is set. After an idle pass it waits: at most ``poll``
        seconds (retries come due), less when ``wake`` is set (a commit in this process) or
        when the subscribed accounts' newest outbox event changes - looked at every ``watch``
        seconds, one indexed query (commits of other processes)."""
        wake = wake or threading.Event()
        while not stop.is_set():
            wake.clear()
            try:
                mark = self._marks()
                busy = self.run_once()
            except Exception:  # the dispatcher must outlive a database hiccup
                log.exception("webhook dispatch pass failed; retrying in %.1f s", poll)
                stop.wait(poll)
                continue
            if busy.attempted or busy.fanned_out:
                continue
            if not (busy.subscriptions or busy.skipped):  # nobody to deliver to
                stop.wait(poll)
                continue
            deadline = time.monotonic() + poll
            while not (stop.is_set() or wake.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wake.wait(min(watch, left))
                try:
                    if self._marks() != mark:
                        break
                except Exception:
                    log.exception("webhook dispatch: looking for new events failed")
                    break

    def _marks(self) -> list[tuple[int, int | None]]:
        """(subscription, its account's newest outbox sequence) of the active subscriptions."""
        with self.tf.db.read() as conn:
            return [(r[0], r[1]) for r in conn.execute(_MARKS)]

    def close(self) -> None:
        """Waits for the pass in progress; the transport is its owner's to close."""
        self._pool.shutdown(wait=True)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        if self._pg:
            yield True  # row locks share the work
            return
        if not self._local_lock.acquire(blocking=False):
            yield False
            return
        try:
            path = _lock_path(self.tf.db.url)
            if path is None:
                yield True
                return
            with path.open("a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        finally:
            self._local_lock.release()

    def _serve(self, subscription_id: int, result: PassResult) -> None:
        try:
            if not self._pg:
                self._serve_sqlite(subscription_id, result)
                return
            result.add(fanned_out=self._fan_out(subscription_id))
            made = 0
            while made < self.batch:
                outcomes = self._attempt(subscription_id)
                if not outcomes:
                    break
                made += len(outcomes)
                for outcome in outcomes:
                    result.add(**{outcome: 1})
        except Exception:
            log.exception("webhook subscription %s: dispatch failed", subscription_id)

    def _serve_sqlite(self, subscription_id: int, result: PassResult) -> None:
        """SQLite: rounds of one run sent, then one write transaction that records it and
        fans out the events committed meanwhile - each turn of the database's single writer
        carries a whole run and a fan-out batch (a turn is what this process waits for while
        the API writes)."""
        made = 0
        while made < self.batch:
            with self.tf.db.read() as conn:
                sub = conn.execute(_SUB, {"sid": subscription_id}).mappings().first()
                heads = self._due_heads(conn, sub, RUN_SQLITE)
            sent = self._send_in_order(sub, heads)
            fan = self._new_deliveries(sub)  # after the run: the newest events ride along
            if not sent and fan is None:
                return
            with self.tf.db.write() as conn:
                outcomes = self._record_all(conn, sent)
                fanned = self._add_deliveries(conn, sub, *fan) if fan is not None else 0
            made += max(len(sent), 1)  # a round that only fans out counts too
            result.add(fanned_out=fanned)
            for outcome in outcomes:
                result.add(**{outcome: 1})
            if sent and not sent[-1][1].ok and fan is None:
                return  # the head waits for its retry

    # --- fan-out ---------------------------------------------------------------------------
    def _fan_out(self, subscription_id: int) -> int:
        with self.tf.db.read() as conn:
            sub = conn.execute(_SUB, {"sid": subscription_id}).mappings().first()
        fan = self._new_deliveries(sub)
        if fan is None:
            return 0
        with self.tf.db.write() as conn:
            return self._add_deliveries(conn, sub, *fan)

    def _new_deliveries(self, sub: Any) -> tuple[list[dict[str, Any]], int] | None:
        """The deliveries of the account's events after ``sub``'s cursor (at most
        ``FAN_OUT``) and the cursor past them; ``None`` when there is no new event."""
        if sub is None or not sub["active"]:
            return None
        with self.tf.db.read() as conn:
            high = outbox.highest(conn, sub["account_id"])
        if not high or high <= sub["cursor"]:
            return None
        account = self.tf.account_slug(sub["account_id"])
        events = outbox.read_after(self.tf, account, sub["cursor"], limit=FAN_OUT)
        if not events:
            return None
        rows = [
            {
                "subscription_id": sub["id"],
                "sequence": e.sequence,
                "type": e.type,
                "payload": e.payload(),
                "status": "pending",
                "attempts": 0,
                "event_at": e.at,
                "window_start": e.at,
                "next_attempt_at": e.at,
            }
            for e in events
            if wants(sub["events"], e.type)
        ]
        return rows, events[-1].sequence

    def _add_deliveries(
        self, conn: Connection, sub: Any, rows: list[dict[str, Any]], cursor: int
    ) -> int:
        """Write the fan-out ``rows`` and move the cursor to ``cursor`` - unless the
        subscription changed since ``sub`` was read (another dispatcher did it, it was paused,
        resumed or deleted): then nothing, and 0."""
        locked = self._lock_subscription(conn, sub["id"])
        if locked is None or locked["cursor"] != sub["cursor"] or not locked["active"]:
            return 0
        if rows:
            conn.execute(sa.insert(WD), rows)
        conn.execute(sa.update(WS).where(WS.c.id == sub["id"]).values(cursor=cursor))
        return len(rows)

    def _lock_subscription(self, conn: Connection, subscription_id: int) -> Any:
        q = _SUB_LOCKED if self._pg else _SUB
        return conn.execute(q, {"sid": subscription_id}).mappings().first()

    # --- attempts --------------------------------------------------------------------------
    def _attempt(self, subscription_id: int) -> list[str]:
        """PostgreSQL: under the subscription's row lock, send its due deliveries, oldest
        first, one after the other, until one fails, none is due, ``RUN`` are sent or
        ``RUN_SECONDS`` have passed; record them in the same transaction. The outcomes (empty
        when nothing was due, or when another dispatcher is serving the subscription)."""
        with self.tf.db.engine.connect() as conn, conn.begin():
            sub = self._lock_subscription(conn, subscription_id)
            heads = self._due_heads(conn, sub, RUN)
            sent = self._send_in_order(sub, heads)
            return self._record_all(conn, sent)

    def _due_heads(self, conn: Connection, sub: Any, most: int) -> list[Any]:
        """The pending deliveries that may be sent now: the subscription's oldest ones, as long
        as each is due (one waiting for its retry holds back those after it)."""
        if sub is None or not sub["active"]:
            return []
        now = self.tf.clock()
        due = []
        for head in conn.execute(_HEADS, {"sid": sub["id"], "n": most}).mappings():
            if head["next_attempt_at"] > now:
                break
            due.append(head)
        return due

    def _send_in_order(self, sub: Any, heads: list[Any]) -> list[tuple[Any, Sent, datetime]]:
        if not heads:
            return []
        target = self._target(sub)  # checked once per run: at most RUN_SECONDS old
        signer = None if isinstance(target, str) else self._signer(sub)
        out = []
        started = time.monotonic()
        for head in heads:
            at = self.tf.clock()
            sent = self._send(sub, head, target, signer)
            out.append((head, sent, at))
            if not sent.ok or time.monotonic() - started > RUN_SECONDS:
                break
        return out

    def _record_all(self, conn: Connection, sent: list[tuple[Any, Sent, datetime]]) -> list[str]:
        """Record a run's attempts (those of deliveries still as they were sent); their
        outcomes. PostgreSQL: in one round trip (two per attempt, one attempt after the other,
        held a loaded machine's dispatcher to about 300 deliveries/s: bench/FINDINGS.md)."""
        if not sent:
            return []
        now = self.tf.clock()
        done = [self._result(head, s, at, now) for head, s, at in sent]
        if self._pg:
            recorded = set(_RECORD_LOGGED.returned_many(conn, [v for _o, v in done]))
        else:
            recorded = {v["did"] for _o, v in done if _RECORD.execute(conn, v)}
            if recorded:
                _LOG.execute_many(conn, [_log_row(v) for _o, v in done if v["did"] in recorded])
        outcomes = []
        for (head, s, _at), (outcome, values) in zip(sent, done, strict=True):
            if values["did"] not in recorded:  # deleted or redelivered while we sent: not ours
                continue
            outcomes.append(outcome)
            if self.observer is not None:
                lag = (now - head["event_at"]).total_seconds() if s.ok else None
                self.observer(Outcome(outcome, head["type"], s.status_code, s.latency_ms, lag))
        return outcomes

    def _result(
        self, head: Any, sent: Sent, at: datetime, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        """The outcome of ``head``'s attempt ``sent`` at ``at``, and its record's values."""
        number = head["attempts"] + 1
        values: dict[str, Any] = {
            "did": head["id"],
            "was": head["attempts"],
            "number": number,
            "code": sent.status_code,
            "error": sent.error,
            "at": at,
            "latency": sent.latency_ms,
        }
        if sent.ok:
            values.update(status="delivered", delivered=now, retry=None)
            return "delivered", values
        with self._rng_lock:
            retry = self.schedule.next_attempt(number, now, head["window_start"], self.rng)
        status = "pending" if retry is not None else "dead"
        values.update(status=status, delivered=None, retry=retry)
        return ("failed" if retry is not None else "dead"), values

    def _target(self, sub: Any) -> Target | str:
        """Where to connect for ``sub``, or why not to send."""
        if sub["key_check"] != key_check(self.webhooks.key):
            return (
                "not sent: this server's webhooks key is not the one the subscription's secret "
                "was made with (set the same TIERFLOW_WEBHOOKS_KEY on every host)"
            )
        try:
            return resolve(
                sub["url"],
                allow_private=self.webhooks.allow_private,
                resolver=self.webhooks.resolver,
            )
        except Refused as exc:
            return f"not sent: url {exc.reason}"[:MAX_ERROR]

    def _send(
        self,
        sub: Any,
        head: Any,
        target: Target | str,
        signer: standardwebhooks.Webhook | None,
    ) -> Sent:
        if isinstance(target, str) or signer is None:
            return Sent(None, None, str(target))
        msg_id = webhook_id(sub["number"], head["sequence"])
        stamp = datetime.fromtimestamp(math.floor(self.wall()), UTC)
        signature = signer.sign(msg_id, stamp, head["payload"])
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signature,
        }
        return self.send(Request(target, headers, head["payload"].encode()))

    def _signer(self, sub: Any) -> standardwebhooks.Webhook:
        return standardwebhooks.Webhook(secret_for(self.webhooks.key, sub["secret_salt"]))


def _log_row(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "delivery_id": values["did"],
        "number": values["number"],
        "at": values["at"],
        "status_code": values["code"],
        "latency_ms": values["latency"],
        "error": values["error"],
    }


def _lock_path(url: str) -> Path | None:
    u = sa.engine.make_url(url)
    if u.database and u.database != ":memory:":
        return Path(f"{u.database}.webhooks.lock")
    return None
