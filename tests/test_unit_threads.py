"""Units of work submitted without group commit (PostgreSQL, in-memory SQLite): each runs in
its own transaction on one of ``UNIT_THREADS`` threads, in the order submitted; a future
cancelled before its unit started skips it; ``dispose`` ends the threads once every unit ran.
(A SQLite file's writer thread is ``tests/test_group_commit.py``'s.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, reach
from workflow import InvalidTransition, TicketView, Tierflow
from workflow.db import UNIT_THREADS, Database

WAIT = 30.0


def _wait_for(what: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not what():
        assert time.monotonic() < deadline, "the unit threads did not start in time"
        time.sleep(0.001)


@pytest.fixture
def engine(db_url: str, clock: FakeClock) -> Iterator[Tierflow]:
    """An engine without group commit: PostgreSQL, or in-memory SQLite for the SQLite run."""
    tf = Tierflow("sqlite://" if db_url.startswith("sqlite") else db_url, clock=clock)
    assert tf.db.group_commit is False
    yield tf
    tf.db.dispose()


@pytest.mark.parametrize("threads", [UNIT_THREADS, 2])
def test_at_most_unit_threads_units_run_at_once_in_the_order_submitted(
    db_url: str, threads: int
) -> None:
    db = Database("sqlite://" if db_url.startswith("sqlite") else db_url, unit_threads=threads)
    lock = threading.Lock()
    running: list[int] = []
    most = 0
    names: set[str] = set()
    release = threading.Event()

    def unit(n: int) -> Callable[[], int]:
        def run() -> int:
            nonlocal most
            with lock:
                running.append(n)
                most = max(most, len(running))
                names.add(threading.current_thread().name)
            assert release.wait(WAIT)
            with lock:
                running.remove(n)
            return n * 10

        return run

    futures = [db.submit(unit(n)) for n in range(threads + 2)]
    _wait_for(lambda: len(running) == threads)
    assert sorted(running) == list(range(threads))  # the first submitted run first
    assert [f.running() for f in futures[threads:]] == [False, False]
    assert futures[-1].cancel()  # not started: it never runs
    release.set()
    assert [f.result(WAIT) for f in futures[:-1]] == [n * 10 for n in range(threads + 1)]
    assert futures[-1].cancelled()
    assert most == threads
    assert len(names) == threads
    assert all(name.startswith("tierflow-unit") for name in names)
    db.dispose()
    assert not [t for t in threading.enumerate() if t.name.startswith("tierflow-unit")]


def test_submitted_fires_commit_each_in_their_own_transaction(engine: Tierflow) -> None:
    """A refused unit leaves the others' writes whole and its future gets the refusal."""
    engine.create_account(slug=ACCOUNT, name="Acme Scheduling")
    ids = [reach(engine, "l1_triage").id for _ in range(3)]

    def fire(
        tid: int, trigger: str, role: str, note: str | None = None
    ) -> Callable[[], TicketView]:
        return lambda: engine.fire(
            account=ACCOUNT, ticket_id=tid, trigger=trigger, role=role, note=note
        )

    futures = [
        engine.db.submit(fire(ids[0], "request_info", "l1_agent", "which username?")),
        engine.db.submit(fire(ids[1], "customer_replied", "customer")),  # not from l1_triage
        engine.db.submit(fire(ids[2], "request_info", "l1_agent", "which browser?")),
    ]
    assert futures[0].result(WAIT).current.state == "waiting_on_customer"
    assert isinstance(futures[1].exception(WAIT), InvalidTransition)
    assert futures[2].result(WAIT).current.state == "waiting_on_customer"
    states = [engine.get_ticket(account=ACCOUNT, ticket_id=t).current.state for t in ids]
    assert states == ["waiting_on_customer", "l1_triage", "waiting_on_customer"]
    assert engine.check() == []


def test_unit_threads_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="unit_threads must be at least 1, not 0"):
        Database("sqlite://", unit_threads=0)
