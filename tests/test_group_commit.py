"""Group commit on SQLite (``Database.serialised``): units of work queued behind the writer
share one transaction, a savepoint each. A unit that fails leaves the others' writes whole; a
COMMIT that fails leaves nothing of the group and every caller hears of it; a caller returns
only after the COMMIT; observers hear of a unit only once it is committed.

The group is made deterministic: the first unit's clock blocks inside its transaction until
every other caller has queued behind it; they then run as one group."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import T0
from tests.scenarios import ACCOUNT, reach
from workflow import InvalidTransition, Tierflow, VersionMismatch
from workflow.db import Database

WAIT = 30.0  # seconds a test waits for threads to queue before it fails


class GateClock:
    """The injected clock; while ``held``, the next reading blocks until ``release``."""

    def __init__(self) -> None:
        self.now = T0
        self.held = False
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> datetime:
        if self.held:
            self.held = False
            self.entered.set()
            assert self.opened.wait(WAIT), "the gate was never opened"
        return self.now

    def hold(self) -> None:
        self.entered.clear()
        self.opened.clear()
        self.held = True

    def release(self) -> None:
        self.opened.set()


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Tierflow, GateClock]]:
    clock = GateClock()
    tf = Tierflow(f"sqlite:///{tmp_path}/tierflow.db", clock=clock)
    tf.create_account(slug=ACCOUNT, name="Acme Scheduling")
    yield tf, clock
    tf.db.dispose()


def _wait_for(what: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not what():
        assert time.monotonic() < deadline, "threads did not queue in time"
        time.sleep(0.001)


def _grouped(tf: Tierflow, clock: GateClock, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls[0]`` alone, blocked inside its transaction, until ``calls[1:]`` have all
    queued behind it; they then commit as one group. Each call's result or exception."""
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:
            out[i] = exc

    clock.hold()
    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert clock.entered.wait(WAIT)
    rest = [threading.Thread(target=run, args=(i,)) for i in range(1, len(calls))]
    for t in rest:
        t.start()
    _wait_for(lambda: len(tf.db._queue) == len(rest))
    clock.release()
    for t in [first, *rest]:
        t.join(WAIT)
        assert not t.is_alive()
    return out


def _commits(tf: Tierflow) -> list[int]:
    seen: list[int] = []
    sa.event.listen(tf.db.engine, "commit", lambda _conn: seen.append(1))
    return seen


def _fire(tf: Tierflow, tid: int, trigger: str, role: str, **kw: Any) -> Callable[[], Any]:
    return lambda: tf.fire(account=ACCOUNT, ticket_id=tid, trigger=trigger, role=role, **kw)


def _history(tf: Tierflow, tid: int) -> list[tuple[str, str | None]]:
    return [(e.kind, e.trigger) for e in tf.events(account=ACCOUNT, ticket_id=tid)]


def test_queued_units_commit_together_and_a_failed_one_leaves_the_others_whole(
    gated: tuple[Tierflow, GateClock],
) -> None:
    tf, clock = gated
    ids = [reach(tf, "l1_triage").id for _ in range(4)]
    before = {tid: _history(tf, tid) for tid in ids}
    heard: list[tuple[int, int]] = []
    tf.observers.append(lambda view, _events: heard.append((view.id, view.version)))
    commits = _commits(tf)
    v0 = tf.get_ticket(account=ACCOUNT, ticket_id=ids[0]).version
    out = _grouped(
        tf,
        clock,
        [
            _fire(tf, ids[0], "request_info", "l1_agent", note="which username?"),
            _fire(tf, ids[1], "request_info", "l1_agent", note="which browser?"),
            _fire(tf, ids[2], "customer_replied", "customer"),  # not from l1_triage
            _fire(tf, ids[3], "request_info", "l1_agent", note="x", expected_version=1),
            _fire(tf, ids[0], "customer_replied", "customer"),  # sees the first, uncommitted
        ],
    )
    assert [type(o).__name__ for o in out] == [
        "TicketView",
        "TicketView",
        "InvalidTransition",
        "VersionMismatch",
        "TicketView",
    ]
    assert isinstance(out[2], InvalidTransition) and isinstance(out[3], VersionMismatch)
    assert len(commits) == 2  # the first alone, then the four queued behind it as one
    assert (out[0].version, out[4].version) == (v0 + 1, v0 + 2)
    assert out[4].current.state == "l1_triage"
    assert _history(tf, ids[0]) == [
        *before[ids[0]],
        ("transition", "request_info"),
        ("transition", "customer_replied"),
    ]
    assert _history(tf, ids[1]) == [*before[ids[1]], ("transition", "request_info")]
    assert _history(tf, ids[2]) == before[ids[2]]  # the refused units wrote nothing
    assert _history(tf, ids[3]) == before[ids[3]]
    assert sorted(heard) == sorted([(ids[0], v0 + 1), (ids[0], v0 + 2), (ids[1], out[1].version)])
    assert tf.check() == []


def test_a_failed_commit_fails_every_unit_of_the_group_and_writes_nothing(
    gated: tuple[Tierflow, GateClock],
) -> None:
    tf, clock = gated
    ids = [reach(tf, "l1_triage").id for _ in range(3)]
    before = {tid: _history(tf, tid) for tid in ids}
    heard: list[int] = []
    tf.observers.append(lambda view, _events: heard.append(view.id))
    fail = {"on": False}

    @sa.event.listens_for(tf.db.engine, "commit")
    def refuse(_conn: Any) -> None:
        if fail["on"]:
            raise OSError("disk full")

    def first() -> Any:  # alone: commits normally; the group behind it then fails to
        view = tf.fire(
            account=ACCOUNT,
            ticket_id=ids[0],
            trigger="request_info",
            role="l1_agent",
            note="which username?",
        )
        fail["on"] = True
        return view

    out = _grouped(
        tf,
        clock,
        [
            first,
            _fire(tf, ids[1], "request_info", "l1_agent", note="which browser?"),
            _fire(tf, ids[2], "request_info", "l1_agent", note="which device?"),
        ],
    )
    assert out[0].current.state == "waiting_on_customer"
    assert [str(o) for o in out[1:]] == ["disk full", "disk full"]
    assert _history(tf, ids[1]) == before[ids[1]]
    assert _history(tf, ids[2]) == before[ids[2]]
    assert heard == [ids[0]]  # nobody hears of what was not committed
    fail["on"] = False
    again = tf.fire(
        account=ACCOUNT,
        ticket_id=ids[1],
        trigger="request_info",
        role="l1_agent",
        note="which browser?",
    )
    assert again.current.state == "waiting_on_customer"  # the writer is usable again
    assert tf.check() == []


def test_an_in_memory_database_runs_units_directly() -> None:
    tf = Tierflow("sqlite://")
    try:
        assert tf.db.group_commit is False
        assert tf.db.serialised(lambda: 42) == 42
    finally:
        tf.db.dispose()


def test_paths_still_replay_after_grouping(gated: tuple[Tierflow, GateClock]) -> None:
    """Every unit kind (respond, comment, update) goes through the group too."""
    tf, clock = gated
    t = reach(tf, "l1_triage")
    out = _grouped(
        tf,
        clock,
        [
            lambda: tf.respond(account=ACCOUNT, ticket_id=t.id, body="on it", role="l1_agent"),
            lambda: tf.comment(account=ACCOUNT, ticket_id=t.id, body="seen", role="l1_agent"),
            _fire(tf, t.id, "request_info", "l1_agent", note="which username?"),
        ],
    )
    assert [o.version for o in out] == [t.version + 1, t.version + 2, t.version + 3]
    assert [k for k, _ in _history(tf, t.id)][-3:] == ["response", "comment", "transition"]
    assert tf.check() == []


# --- submit: units without a waiting thread, run by the database's writer thread -------------
@pytest.fixture
def triaged(gated: tuple[Tierflow, GateClock]) -> tuple[Tierflow, GateClock, list[int]]:
    """The gated engine and three tickets in ``l1_triage``."""
    tf, clock = gated
    return tf, clock, [reach(tf, "l1_triage").id for _ in range(3)]


def _writer_held(tf: Tierflow, clock: GateClock, tid: int) -> Future[Any]:
    """Submit ``request_info`` on ticket ``tid``; returns once the writer thread is blocked
    inside that unit (until ``clock.release()``)."""
    clock.hold()
    first = tf.db.submit(_fire(tf, tid, "request_info", "l1_agent", note="which username?"))
    assert clock.entered.wait(WAIT)
    return first


def test_submitted_units_commit_together_and_each_future_gets_its_own_answer(
    triaged: tuple[Tierflow, GateClock, list[int]],
) -> None:
    tf, clock, ids = triaged
    before = _history(tf, ids[2])
    heard: list[int] = []
    tf.observers.append(lambda view, _events: heard.append(view.id))
    commits = _commits(tf)
    first = _writer_held(tf, clock, ids[0])
    rest = [
        tf.db.submit(_fire(tf, ids[1], "request_info", "l1_agent", note="which browser?")),
        tf.db.submit(_fire(tf, ids[2], "customer_replied", "customer")),  # not from l1_triage
        tf.db.submit(_fire(tf, ids[0], "customer_replied", "customer")),
    ]
    assert len(tf.db._queue) == 3 and not any(f.done() for f in [first, *rest])
    clock.release()
    assert first.result(WAIT).current.state == "waiting_on_customer"
    assert rest[0].result(WAIT).current.state == "waiting_on_customer"
    assert isinstance(rest[1].exception(WAIT), InvalidTransition)
    assert rest[2].result(WAIT).current.state == "l1_triage"
    assert len(commits) == 2  # the first alone, then the three queued behind it as one
    assert _history(tf, ids[2]) == before
    assert sorted(heard) == sorted([ids[0], ids[1], ids[0]])  # all after their COMMIT
    assert tf.check() == []


def test_the_lead_passes_between_waiting_callers_and_the_writer_thread(
    triaged: tuple[Tierflow, GateClock, list[int]],
) -> None:
    """A caller of ``serialised`` leading hands the lead to the writer thread when a submitted
    unit is next, and the writer thread runs (and wakes) a waiting caller's unit."""
    tf, clock, ids = triaged
    out: list[Any] = []
    clock.hold()
    leader = threading.Thread(
        target=lambda: out.append(_fire(tf, ids[0], "request_info", "l1_agent", note="a")())
    )
    leader.start()
    assert clock.entered.wait(WAIT)  # a caller of serialised leads, inside its unit
    submitted = tf.db.submit(_fire(tf, ids[1], "request_info", "l1_agent", note="b"))
    waiting = threading.Thread(
        target=lambda: out.append(_fire(tf, ids[2], "request_info", "l1_agent", note="c")())
    )
    waiting.start()
    _wait_for(lambda: len(tf.db._queue) == 2)
    clock.release()
    assert submitted.result(WAIT).current.state == "waiting_on_customer"
    for t in (leader, waiting):
        t.join(WAIT)
        assert not t.is_alive()
    assert sorted(v.id for v in out) == [ids[0], ids[2]]
    assert all(v.current.state == "waiting_on_customer" for v in out)
    assert tf.db.submit(lambda: 7).result(WAIT) == 7  # nobody leads now: the writer takes it


def test_a_future_cancelled_before_its_unit_ran_skips_the_unit(
    triaged: tuple[Tierflow, GateClock, list[int]],
) -> None:
    tf, clock, ids = triaged
    before = _history(tf, ids[1])
    first = _writer_held(tf, clock, ids[0])
    dropped = tf.db.submit(_fire(tf, ids[1], "request_info", "l1_agent", note="b"))
    assert dropped.cancel()
    clock.release()
    assert first.result(WAIT).current.state == "waiting_on_customer"
    assert tf.db.submit(lambda: 7).result(WAIT) == 7  # the writer thread goes on
    assert _history(tf, ids[1]) == before


def test_dispose_ends_the_writer_thread(tmp_path: Path) -> None:
    tf = Tierflow(f"sqlite:///{tmp_path}/tierflow.db")
    assert tf.db.submit(lambda: 42).result(WAIT) == 42
    thread = tf.db._writer_thread
    assert thread is not None and thread.is_alive()
    tf.db.dispose()
    assert not thread.is_alive()


def _thread_of(tf: Tierflow, tid: int, trigger: str, role: str, **kw: Any) -> Callable[[], Any]:
    """The unit's answer and the name of the thread that ran it."""
    fire = _fire(tf, tid, trigger, role, **kw)
    return lambda: (fire(), threading.current_thread().name)


def test_enqueued_units_run_in_the_thread_that_leads_them_as_one_group(
    triaged: tuple[Tierflow, GateClock, list[int]],
) -> None:
    """``enqueue`` starts nothing; ``lead_queued`` runs every queued unit here, in one
    transaction, each future with its own answer (a refused one with its error)."""
    tf, _clock, ids = triaged
    commits = _commits(tf)
    futures = [
        tf.db.enqueue(_thread_of(tf, ids[0], "request_info", "l1_agent", note="a")),
        tf.db.enqueue(_thread_of(tf, ids[1], "customer_replied", "customer")),  # refused
        tf.db.enqueue(_thread_of(tf, ids[2], "request_info", "l1_agent", note="c")),
    ]
    assert len(tf.db._queue) == 3 and not any(f.done() for f in futures)
    tf.db.lead_queued()
    assert all(f.done() for f in futures) and len(commits) == 1
    here = threading.current_thread().name
    assert [f.result()[1] for f in (futures[0], futures[2])] == [here, here]
    assert [f.result()[0].current.state for f in (futures[0], futures[2])] == [
        "waiting_on_customer",
        "waiting_on_customer",
    ]
    assert isinstance(futures[1].exception(), InvalidTransition)
    assert tf.db._writer_thread is None  # no thread was needed
    tf.db.lead_queued()  # nothing queued: nothing happens
    assert len(commits) == 1 and tf.check() == []


def test_lead_queued_never_waits_for_another_writer_of_the_file(
    triaged: tuple[Tierflow, GateClock, list[int]], tmp_path: Path
) -> None:
    """While another writer (another process, here another ``Database`` on the same file) has
    its turn, ``lead_queued`` returns at once and the writer thread runs the queue once the
    turn is over."""
    tf, _clock, ids = triaged
    other = Database(f"sqlite:///{tmp_path}/tierflow.db")
    assert other._turns is not None
    try:
        with other._turns.turn():
            queued = tf.db.enqueue(_thread_of(tf, ids[0], "request_info", "l1_agent", note="a"))
            leader = threading.Thread(target=tf.db.lead_queued)
            leader.start()
            leader.join(WAIT)
            assert not leader.is_alive()  # returned while the other writer holds its turn
            assert not queued.done()
        view, thread = queued.result(WAIT)
        assert view.current.state == "waiting_on_customer" and thread == "tierflow-writer"
    finally:
        other.dispose()


def test_lead_queued_never_waits_for_a_thread_of_its_own_process_that_writes(
    triaged: tuple[Tierflow, GateClock, list[int]],
) -> None:
    tf, clock, ids = triaged
    clock.hold()
    direct = threading.Thread(target=_fire(tf, ids[0], "request_info", "l1_agent", note="a"))
    direct.start()
    assert clock.entered.wait(WAIT)  # a caller of serialised leads, inside its unit
    queued = tf.db.enqueue(_thread_of(tf, ids[1], "request_info", "l1_agent", note="b"))
    tf.db.lead_queued()  # returns at once: the leader runs the queue
    assert not queued.done()
    clock.release()
    view, thread = queued.result(WAIT)
    assert view.current.state == "waiting_on_customer"
    assert thread in ("tierflow-writer", direct.name)
    direct.join(WAIT)


def test_without_group_commit_enqueue_is_submit(tmp_path: Path) -> None:
    tf = Tierflow("sqlite://")
    try:
        assert not tf.db.group_commit
        queued = tf.db.enqueue(lambda: threading.current_thread().name)
        assert queued.result(WAIT).startswith("tierflow-unit")
        tf.db.lead_queued()  # nothing to lead
    finally:
        tf.db.dispose()


def test_dispose_runs_units_enqueued_that_nobody_led(tmp_path: Path) -> None:
    tf = Tierflow(f"sqlite:///{tmp_path}/tierflow.db")
    queued = tf.db.enqueue(lambda: 42)
    tf.db.dispose()
    assert queued.result(0) == 42
