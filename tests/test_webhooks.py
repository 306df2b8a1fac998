"""Webhooks end to end against real receivers on 127.0.0.1: signatures, retries with the same
webhook-id, catching up in order, dead letters, redelivery, pause, secrets at rest. The retry
clock is the engine's injected clock: the tests move it instead of sleeping. Every test runs on
SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import json
import random
import stat
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from workflow import NotFound, Tierflow, webhooks_dispatch
from workflow.webhooks import (
    WD,
    WS,
    Webhooks,
    default_key_path,
    key_check,
    load_key,
    secret_for,
)
from workflow.webhooks_dispatch import Dispatcher, Outcome, Request, RetrySchedule, Send, Sent

from .conftest import FakeClock
from .scenarios import ACCOUNT, TECH, new_ticket
from .test_pg import _syncs
from .webhook_receiver import Received, Receiver, receiver

KEY = b"k" * 32


@pytest.fixture
def hooks(tf: Tierflow) -> Webhooks:
    return Webhooks(tf, KEY, allow_private=True)


@pytest.fixture
def outcomes() -> list[Outcome]:
    return []


@pytest.fixture
def dispatcher(hooks: Webhooks, outcomes: list[Outcome], send: Send) -> Iterator[Dispatcher]:
    d = Dispatcher(hooks, send=send, rng=random.Random(16), observer=outcomes.append)
    yield d
    d.close()


def _fire_some(tf: Tierflow, n: int) -> list[int]:
    """``n`` tickets created and triaged: 2n events."""
    ids = []
    for _ in range(n):
        t = new_ticket(tf, TECH)
        tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent", actor="ana")
        ids.append(t.id)
    return ids


def _drain(d: Dispatcher, clock: FakeClock, *, step: float, until: float) -> None:
    """Passes while the clock moves ``step`` seconds at a time, up to ``until`` seconds."""
    moved = 0.0
    while moved <= until:
        d.run_once()
        clock.advance(seconds=step)
        moved += step


def test_every_delivery_is_signed_and_verifies_with_standardwebhooks(
    tf: Tierflow, hooks: Webhooks, dispatcher: Dispatcher, outcomes: list[Outcome]
) -> None:
    _fire_some(tf, 1)  # before the subscription: never delivered
    with receiver() as rx:
        sub, secret = hooks.create(account=ACCOUNT, url=rx.url, description="all of it")
        assert secret.startswith("whsec_") and sub.events == ["*"]
        _fire_some(tf, 2)  # sequences 3..6
        result = dispatcher.run_once()
        assert (result.fanned_out, result.delivered, result.failed) == (4, 4, 0)
        assert [r.webhook_id for r in rx.got] == [f"msg_{sub.id}_{s}" for s in (3, 4, 5, 6)]
        payloads = [r.verify(secret) for r in rx.got]  # raises unless the signature is good
        assert [(p["sequence"], p["type"]) for p in payloads] == [
            (3, "ticket.created"),
            (4, "ticket.transitioned"),
            (5, "ticket.created"),
            (6, "ticket.transitioned"),
        ]
        assert (payloads[1]["actor"], payloads[1]["role"]) == ("ana", "l1_agent")
        assert (payloads[1]["ticket"]["state"], payloads[1]["ticket"]["version"]) == (
            "l1_triage",
            2,
        )
        first = rx.got[0]
        assert first.headers["content-type"] == "application/json"
        assert first.headers["webhook-signature"].startswith("v1,")
        with pytest.raises(Exception, match="No matching signature"):
            Received(first.path, first.headers, first.body.replace("3", "4", 1)).verify(secret)
        other = secret_for(KEY, "00" * 32)
        with pytest.raises(Exception, match="No matching signature"):
            first.verify(other)
        assert dispatcher.run_once().attempted == 0  # nothing twice
    assert [o.outcome for o in outcomes] == ["delivered"] * 4
    assert all(o.lag_seconds == 0.0 for o in outcomes)  # the injected clock did not move


def test_a_receiver_answering_500_gets_the_same_webhook_id_until_it_answers_2xx(
    tf: Tierflow, hooks: Webhooks, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    answers = iter([500, 503, 200])
    with receiver(lambda _r: next(answers, 200)) as rx:
        sub, secret = hooks.create(account=ACCOUNT, url=rx.url, events=["ticket.created"])
        _fire_some(tf, 1)  # created (1) and transitioned (2): only 1 is wanted
        dispatcher.run_once()
        (d,) = hooks.deliveries(account=ACCOUNT, subscription_id=sub.id)
        assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, 500)
        assert d.next_attempt_at is not None
        wait = d.next_attempt_at - clock()
        assert timedelta(seconds=2.5) <= wait <= timedelta(seconds=5)  # 5 s less jitter
        assert dispatcher.run_once().attempted == 0  # not due yet
        _drain(dispatcher, clock, step=5, until=60)
        assert [r.webhook_id for r in rx.got] == [f"msg_{sub.id}_1"] * 3
        assert len({r.body for r in rx.got}) == 1  # the same body every time
        for r in rx.got:
            r.verify(secret)
        (d,) = hooks.deliveries(account=ACCOUNT, subscription_id=sub.id)
        assert (d.status, d.attempts, d.last_status_code, d.last_error) == (
            "delivered",
            3,
            200,
            None,
        )
        assert [(a.number, a.status_code, a.error) for a in d.log] == [
            (1, 500, "answered 500"),
            (2, 503, "answered 503"),
            (3, 200, None),
        ]
        assert all(a.latency_ms is not None and a.latency_ms > 0 for a in d.log)


def test_a_receiver_down_for_a_minute_catches_up_in_order(
    tf: Tierflow, hooks: Webhooks, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    rx = Receiver()
    rx.start()
    port = rx.port
    try:
        sub, _secret = hooks.create(account=ACCOUNT, url=rx.url)
        rx.stop()  # down: connections are refused
        _fire_some(tf, 3)  # 1..6
        for _ in range(12):  # a minute, in 5 s steps
            dispatcher.run_once()
            clock.advance(seconds=5)
        log = {d.sequence: d for d in hooks.deliveries(account=ACCOUNT, subscription_id=sub.id)}
        assert log[1].attempts >= 3 and log[1].last_error is not None
        assert log[1].last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
        assert [log[s].attempts for s in range(2, 7)] == [0] * 5  # in order: they wait
        rx.start(port)  # back up
        _drain(dispatcher, clock, step=30, until=600)
        assert rx.sequences() == [1, 2, 3, 4, 5, 6]
        statuses = {d.status for d in hooks.deliveries(account=ACCOUNT, subscription_id=sub.id)}
        assert statuses == {"delivered"}
    finally:
        rx.stop()


def test_a_dead_letter_does_not_block_the_rest_and_can_be_redelivered(
    tf: Tierflow,
    hooks: Webhooks,
    dispatcher: Dispatcher,
    clock: FakeClock,
    outcomes: list[Outcome],
) -> None:
    poisoned = {"on": True}

    def answer(r: Received) -> int:
        return 500 if poisoned["on"] and json.loads(r.body)["sequence"] == 2 else 204

    with receiver(answer) as rx:
        sub, _ = hooks.create(account=ACCOUNT, url=rx.url)
        _fire_some(tf, 2)  # 1..4; 2 always fails
        _drain(dispatcher, clock, step=600, until=timedelta(hours=30).total_seconds())
        log = {d.sequence: d for d in hooks.deliveries(account=ACCOUNT, subscription_id=sub.id)}
        assert {s: log[s].status for s in log} == {
            1: "delivered",
            2: "dead",
            3: "delivered",
            4: "delivered",
        }
        dead = log[2]
        assert dead.next_attempt_at is None
        # attempts spread over the window, none after it
        assert dead.log[-1].at - dead.log[0].at <= timedelta(hours=24)
        assert dead.log[-1].at - dead.log[0].at >= timedelta(hours=12)
        assert 6 <= dead.attempts <= 14
        assert [o.outcome for o in outcomes].count("dead") == 1
        # 3 and 4 were delivered only once 2 was given up
        assert rx.sequences()[-2:] == [3, 4]
        assert min(log[3].log[0].at, log[4].log[0].at) >= dead.log[-1].at

        poisoned["on"] = False
        again = hooks.redeliver(account=ACCOUNT, subscription_id=sub.id, delivery_id=dead.id)
        assert (again.status, again.next_attempt_at) == ("pending", clock())
        dispatcher.run_once()
        assert rx.got[-1].webhook_id == f"msg_{sub.id}_2"
        done = hooks.delivery(account=ACCOUNT, subscription_id=sub.id, delivery_id=dead.id)
        assert (done.status, done.attempts) == ("delivered", dead.attempts + 1)


@pytest.mark.parametrize(
    ("failures", "no_jitter", "full_jitter"),
    [
        (1, 5, 2.5),
        (2, 20, 10),
        (3, 80, 40),
        (4, 320, 160),
        (5, 1280, 640),
        (6, 5120, 2560),
        (7, 20480, 10240),
        (8, 21600, 10800),  # capped at 6 h
        (20, 21600, 10800),
    ],
)
def test_the_retry_schedule_is_exponential_with_jitter_and_capped(
    failures: int, no_jitter: float, full_jitter: float
) -> None:
    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__(0)
            self.value = value

        def random(self) -> float:
            return self.value

    s = RetrySchedule()
    assert s.delay(failures, Fixed(0.0)) == timedelta(seconds=no_jitter)
    assert s.delay(failures, Fixed(1.0)) == timedelta(seconds=full_jitter)


def test_the_retry_window_ends_in_a_dead_letter_after_about_a_day(clock: FakeClock) -> None:
    s, rng = RetrySchedule(), random.Random(3)
    start = now = clock()
    failures = 0
    while True:
        failures += 1
        nxt = s.next_attempt(failures, now, start, rng)
        if nxt is None:
            break
        now = nxt
    assert timedelta(hours=18) <= now - start <= timedelta(hours=24)
    assert 8 <= failures <= 14


def test_paused_subscriptions_get_nothing_and_resume_from_then_on(
    tf: Tierflow, hooks: Webhooks, dispatcher: Dispatcher
) -> None:
    with receiver() as rx:
        sub, _ = hooks.create(account=ACCOUNT, url=rx.url)
        paused = hooks.update(account=ACCOUNT, subscription_id=sub.id, active=False)
        assert paused.active is False
        _fire_some(tf, 1)  # 1, 2: while paused
        dispatcher.run_once()
        assert rx.got == []
        hooks.update(
            account=ACCOUNT, subscription_id=sub.id, active=True, events=["ticket.transitioned"]
        )
        _fire_some(tf, 1)  # 3, 4: only the transition is wanted
        dispatcher.run_once()
        assert rx.sequences() == [4]


def test_deleting_a_subscription_removes_it_and_its_log(
    tf: Tierflow, hooks: Webhooks, dispatcher: Dispatcher
) -> None:
    with receiver() as rx:
        sub, _ = hooks.create(account=ACCOUNT, url=rx.url)
        _fire_some(tf, 1)
        dispatcher.run_once()
        hooks.delete(account=ACCOUNT, subscription_id=sub.id)
        with pytest.raises(NotFound, match="webhook"):
            hooks.get(account=ACCOUNT, subscription_id=sub.id)
        _fire_some(tf, 1)
        dispatcher.run_once()
        assert rx.sequences() == [1, 2]


def test_the_database_alone_cannot_sign(
    tf: Tierflow, hooks: Webhooks, outcomes: list[Outcome], send: Send
) -> None:
    with receiver() as rx:
        sub, secret = hooks.create(account=ACCOUNT, url=rx.url)
        with tf.db.read() as conn:
            row = conn.execute(sa.select(WS).where(WS.c.id == sub.id)).mappings().one()
        stored = " ".join(str(v) for v in row.values())
        raw = secret.removeprefix("whsec_")
        assert raw not in stored and secret not in stored
        assert row["key_check"] == key_check(KEY) and KEY.decode() not in stored
        assert secret_for(KEY, row["secret_salt"]) == secret  # the key is needed ...
        assert secret_for(b"x" * 32, row["secret_salt"]) != secret  # ... and only it works
        # a dispatcher with another key refuses to send rather than sign wrongly
        other = Dispatcher(
            Webhooks(tf, b"x" * 32, allow_private=True), send=send, observer=outcomes.append
        )
        try:
            _fire_some(tf, 1)
            other.run_once()
        finally:
            other.close()
        assert rx.got == []
        d = hooks.deliveries(account=ACCOUNT, subscription_id=sub.id)[-1]
        assert d.last_error is not None and "TIERFLOW_WEBHOOKS_KEY" in d.last_error


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/tf.db"
    path = default_key_path(url)
    assert path == tmp_path / "tf.db.webhooks-key"
    first = load_key(url)
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(url) == first and len(first) >= 32
    assert load_key(url, key="y" * 40) == b"y" * 40
    with pytest.raises(Exception, match="at least 32"):
        load_key(url, key="short")


def test_a_host_name_is_resolved_once_and_the_checked_address_is_connected_to(
    tf: Tierflow, send: Send
) -> None:
    with receiver() as rx:
        names = {"hooks.receiver.test": ["127.0.0.1"]}
        hooks = Webhooks(tf, KEY, allow_private=True, resolver=lambda h, _p: names[h])
        d = Dispatcher(hooks, send=send, rng=random.Random(1))
        try:
            sub, secret = hooks.create(
                account=ACCOUNT, url=f"http://hooks.receiver.test:{rx.port}/in?x=1"
            )
            _fire_some(tf, 1)
            d.run_once()
        finally:
            d.close()
        assert rx.got and rx.got[0].headers["host"] == f"hooks.receiver.test:{rx.port}"
        assert rx.got[0].path == "/in?x=1"
        rx.got[0].verify(secret)
        assert sub.url.startswith("http://hooks.receiver.test")


def test_two_dispatchers_never_make_the_same_attempt_twice(
    tf: Tierflow, db_url: str, send: Send
) -> None:
    """Two dispatchers (each with its own engine, as two servers would have) race over three
    subscriptions: every event reaches every receiver exactly once, in order, and the log has
    exactly one attempt per request received. (PostgreSQL: row locks, SKIP LOCKED; SQLite:
    the database's dispatch lock lets one pass run at a time.)"""
    import threading

    with receiver() as rx:
        subs = [
            Webhooks(tf, KEY, allow_private=True).create(account=ACCOUNT, url=f"{rx.url}/{i}")[0]
            for i in range(3)
        ]
        engines = [Tierflow(db_url, clock=tf.clock, create_schema=False) for _ in range(2)]
        dispatchers = [Dispatcher(Webhooks(e, KEY, allow_private=True), send=send) for e in engines]
        done = threading.Event()

        def run(d: Dispatcher) -> None:
            for _ in range(400):  # bounded
                d.run_once()
                if done.is_set() and d.run_once().attempted == 0:
                    return

        threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
        try:
            for th in threads:
                th.start()
            _fire_some(tf, 15)  # 30 events while both run
            done.set()
            for th in threads:
                th.join(timeout=60)
        finally:
            for d in dispatchers:
                d.close()
            for e in engines:
                e.db.dispose()
        for s in subs:
            got = [r for r in rx.got if r.path == f"/hook/{s.id - subs[0].id}"]
            assert [r.webhook_id for r in got] == [f"msg_{s.id}_{n}" for n in range(1, 31)]
            log = Webhooks(tf, KEY).deliveries(account=ACCOUNT, subscription_id=s.id, limit=100)
            assert sorted(d.attempts for d in log) == [1] * 30


def test_reading_the_outbox_bit_by_bit_gives_what_a_whole_replay_gives(
    tf: Tierflow, db_url: str, clock: FakeClock
) -> None:
    """``_view_at`` folds on from the last version it rebuilt per ticket; the tickets it
    gives are those of a cold engine replaying each history whole."""
    from workflow import outbox

    ids = _fire_some(tf, 2)
    for _ in range(3):
        for tid in ids:
            clock.advance(minutes=7)
            tf.fire(
                account=ACCOUNT,
                ticket_id=tid,
                trigger="request_info",
                role="l1_agent",
                note="which username?",
            )
            clock.advance(minutes=3)
            tf.fire(account=ACCOUNT, ticket_id=tid, trigger="customer_replied", role="customer")
    bit_by_bit = []
    after = 0
    while batch := outbox.read_after(tf, ACCOUNT, after, limit=3):
        bit_by_bit += batch
        after = batch[-1].sequence
    cold = Tierflow(db_url, clock=clock, create_schema=False)
    try:
        whole = outbox.read_after(cold, ACCOUNT, 0)
        again = outbox.read_after(tf, ACCOUNT, 0)  # older versions than the ones kept
    finally:
        cold.db.dispose()
    assert len(whole) == 16
    assert [e.payload() for e in bit_by_bit] == [e.payload() for e in whole]
    assert [e.payload() for e in again] == [e.payload() for e in whole]


def test_old_delivered_and_dead_deliveries_leave_the_log_pending_ones_stay(
    tf: Tierflow, hooks: Webhooks, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    from workflow.webhooks import prune

    with receiver(lambda r: 500 if json.loads(r.body)["sequence"] == 3 else 200) as rx:
        sub, _ = hooks.create(account=ACCOUNT, url=rx.url)
        _fire_some(tf, 2)  # 1, 2 delivered; 3 fails and waits; 4 waits behind it
        dispatcher.run_once()
        clock.advance(days=40)
        assert prune(tf, before=clock() - timedelta(days=30)) == 2
        left = hooks.deliveries(account=ACCOUNT, subscription_id=sub.id)
        assert [(d.sequence, d.status) for d in left] == [(4, "pending"), (3, "pending")]
        assert prune(tf, before=clock()) == 0


def test_on_sqlite_a_run_is_recorded_with_the_next_fan_out_in_one_transaction(
    tf: Tierflow,
    hooks: Webhooks,
    send: Send,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each of the dispatcher's write transactions waits for a turn of SQLite's single writer
    (the API's writer thread is busy under load), so one carries as much as it can: the events
    committed while a run was sent are fanned out in the transaction that records the run."""
    if tf.db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL records each run under its row lock, fan-out apart")
    monkeypatch.setattr(webhooks_dispatch, "RUN_SECONDS", 600.0)  # a loaded machine: one run
    writes: list[str] = []  # the dispatcher's own write transactions
    meanwhile = {"fired": False, "firing": False}
    sa.event.listen(
        tf.db.engine,
        "commit",
        lambda _conn: meanwhile["firing"] or writes.append(threading.current_thread().name),
    )

    def send_and_commit_more(request: Request) -> Sent:
        if not meanwhile["fired"]:  # two events committed while the run is being sent
            meanwhile["fired"] = meanwhile["firing"] = True
            _fire_some(tf, 1)
            meanwhile["firing"] = False
        return send(request)

    with receiver() as rx:
        sub, _secret = hooks.create(account=ACCOUNT, url=rx.url)
        _fire_some(tf, 40)  # sequences 1..80
        d = Dispatcher(hooks, send=send_and_commit_more, rng=random.Random(16))
        try:
            writes.clear()
            result = d.run_once()
        finally:
            d.close()
        assert rx.sequences() == list(range(1, 83))
    assert (result.fanned_out, result.delivered) == (82, 82)
    # fan-out of 1..80; send 1..80 (81, 82 commit meanwhile), record them + fan out 81..82;
    # send 81..82, record them. Before: a fan-out, runs of 50: five.
    assert len(writes) == 3, writes
    log = hooks.deliveries(account=ACCOUNT, subscription_id=sub.id, limit=100)
    assert {d.status for d in log} == {"delivered"} and len(log) == 82


def test_a_runs_attempts_are_recorded_together_and_on_postgresql_in_one_round_trip(
    tf: Tierflow,
    hooks: Webhooks,
    send: Send,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A subscription's deliveries go out one at a time, so what recording each one costs
    bounds its deliveries per second: on PostgreSQL a run's records (five attempts here) take
    one round trip together - two per attempt before, which under the API's load made the
    dispatcher fall seconds behind. An attempt whose delivery changed while it was sent is not
    recorded (nor observed); the others are, each with its log row."""
    monkeypatch.setattr(webhooks_dispatch, "RUN_SECONDS", 600.0)  # a loaded machine: one run
    answers = iter([204, 204, 204, 204, 500])
    outcomes: list[Outcome] = []

    def send_and_meddle(request: Request) -> Sent:
        if request.headers["webhook-id"].endswith("_3"):  # tried by someone else meanwhile
            with tf.db.write() as conn:
                later = clock() + timedelta(hours=1)
                conn.execute(
                    sa.update(WD)
                    .where(WD.c.sequence == 3)
                    .values(attempts=WD.c.attempts + 1, next_attempt_at=later)
                )
        return send(request)

    with receiver(lambda _r: next(answers)) as rx:
        sub, _secret = hooks.create(account=ACCOUNT, url=rx.url)
        _fire_some(tf, 3)  # sequences 1..6
        d = Dispatcher(hooks, send=send_and_meddle, rng=random.Random(16), observer=outcomes.append)
        syncs: list[int] = []
        if tf.db.engine.dialect.name == "postgresql":
            record_all = d._record_all

            def traced(conn: sa.Connection, sent: Any) -> list[str]:
                raw = conn.connection.dbapi_connection
                trace = tmp_path / f"trace{len(syncs)}"
                with trace.open("w") as out:
                    raw.pgconn.trace(out.fileno())
                    try:
                        return record_all(conn, sent)
                    finally:
                        raw.pgconn.untrace()
                        syncs.append(_syncs(trace.read_text()))

            monkeypatch.setattr(d, "_record_all", traced)
        try:
            d.run_once()
        finally:
            d.close()
        assert rx.sequences() == [1, 2, 3, 4, 5]  # the run ends at the failure
    if tf.db.engine.dialect.name == "postgresql":
        assert syncs == [1, 0]  # the run of five in one round trip; then none was due
    assert [o.outcome for o in outcomes] == ["delivered", "delivered", "delivered", "failed"]
    log = sorted(
        hooks.deliveries(account=ACCOUNT, subscription_id=sub.id), key=lambda x: x.sequence
    )
    assert [
        (x.sequence, x.status, x.attempts, x.last_status_code, [a.status_code for a in x.log])
        for x in log
    ] == [
        (1, "delivered", 1, 204, [204]),
        (2, "delivered", 1, 204, [204]),
        (3, "pending", 1, None, []),  # the meddler's count; this attempt was not recorded
        (4, "delivered", 1, 204, [204]),
        (5, "pending", 1, 500, [500]),
        (6, "pending", 0, None, []),
    ]
    assert log[4].next_attempt_at is not None and log[4].next_attempt_at > clock()
    assert all(x.delivered_at == clock() for x in log if x.status == "delivered")
