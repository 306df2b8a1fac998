"""``api.units.run_unit``, the way ``async`` routes run the engine: on a SQLite file the event
loop runs the units of the requests it read in one iteration itself, as one group, and never
waits for another writer of the file (the writer thread does); elsewhere a unit thread runs
each unit. Every answer arrives after its COMMIT."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from api.units import run_unit
from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, reach
from workflow import InvalidTransition, Tierflow
from workflow.db import Database

WAIT = 30.0


@pytest.fixture
def engine(tmp_path: Path, clock: FakeClock) -> Iterator[Tierflow]:
    tf = Tierflow(f"sqlite:///{tmp_path}/tierflow.db", clock=clock)
    tf.create_account(slug=ACCOUNT, name="Acme Scheduling")
    yield tf
    tf.db.dispose()


def _fire(tf: Tierflow, tid: int, trigger: str, role: str, **kw: Any) -> Callable[[], Any]:
    """The unit's ticket state and the name of the thread that ran it."""

    def call() -> tuple[str, str]:
        view = tf.fire(account=ACCOUNT, ticket_id=tid, trigger=trigger, role=role, **kw)
        return view.current.state, threading.current_thread().name

    return call


def test_the_units_of_one_loop_iteration_run_on_the_loop_as_one_group(
    engine: Tierflow,
) -> None:
    ids = [reach(engine, "l1_triage").id for _ in range(3)]
    commits: list[int] = []
    sa.event.listen(engine.db.engine, "commit", lambda _conn: commits.append(1))

    async def main() -> list[Any]:
        calls = [
            _fire(engine, ids[0], "request_info", "l1_agent", note="a"),
            _fire(engine, ids[1], "customer_replied", "customer"),  # refused: not waiting
            _fire(engine, ids[2], "request_info", "l1_agent", note="c"),
        ]
        return await asyncio.gather(*(run_unit(engine, c) for c in calls), return_exceptions=True)

    first, refused, third = asyncio.run(main())
    loop_thread = threading.current_thread().name  # asyncio.run's loop runs in this thread
    assert first == ("waiting_on_customer", loop_thread)
    assert third == ("waiting_on_customer", loop_thread)
    assert isinstance(refused, InvalidTransition)
    assert len(commits) == 1
    assert engine.db._writer_thread is None  # the loop led: no writer thread was started


def test_the_loop_goes_on_while_another_writer_has_the_file(
    engine: Tierflow, tmp_path: Path
) -> None:
    """The unit waits for the other writer's turn in the writer thread; the loop meanwhile
    turns (and would serve other requests)."""
    tid = reach(engine, "l1_triage").id
    other = Database(f"sqlite:///{tmp_path}/tierflow.db")
    assert other._turns is not None

    async def main() -> tuple[str, str]:
        with other._turns.turn():  # another process's turn, until the block ends
            unit = asyncio.ensure_future(
                run_unit(engine, _fire(engine, tid, "request_info", "l1_agent", note="a"))
            )
            for _ in range(100):  # the loop is not blocked by the unit waiting its turn
                await asyncio.sleep(0)
            assert not unit.done()
        return await asyncio.wait_for(unit, WAIT)

    try:
        assert asyncio.run(main()) == ("waiting_on_customer", "tierflow-writer")
    finally:
        other.dispose()


def test_without_group_commit_a_unit_thread_runs_each_unit(clock: FakeClock) -> None:
    tf = Tierflow("sqlite://", clock=clock)  # in memory: no group commit (as PostgreSQL)
    try:
        tf.create_account(slug=ACCOUNT, name="Acme Scheduling")
        tid = reach(tf, "l1_triage").id
        state, thread = asyncio.run(
            run_unit(tf, _fire(tf, tid, "request_info", "l1_agent", note="a"))
        )
        assert state == "waiting_on_customer" and thread.startswith("tierflow-unit")
    finally:
        tf.db.dispose()
