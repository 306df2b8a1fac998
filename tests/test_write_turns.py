"""Writers of one SQLite file take turns: a writer in another process (the webhooks
dispatcher, a CLI command, a second worker) gets its transaction in within a group or two of
a writer thread that commits group after group without a pause (``Database.write``: the
write-intent turnstile). Without it, SQLite's busy handler retries only after growing sleeps
and seldom finds the lock free between two groups of the other process."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from workflow.db import MAX_GROUP, Database

WAIT = 60.0  # seconds a test waits for a thread or process before it fails
WORK = 300  # steps of SQLite's own work per unit: it fills the writer's time, not Python
MOST = 600  # the busy writer's groups are bounded: the test ends even on the old code
TURNS = 10  # transactions the other process makes, one after the other

OTHER = """
import sys
from workflow.db import MAX_GROUP, Database

db = Database(sys.argv[1])
for turn in range(int(sys.argv[2])):
    with db.read() as conn:
        before = conn.exec_driver_sql("SELECT n FROM groups").scalar_one()
    with db.write() as conn:  # its turn: within a group or two of the writer thread's
        conn.exec_driver_sql("INSERT INTO other SELECT ?, n - ? FROM groups", (turn, before))
db.dispose()
"""


_WORK = """WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
INSERT INTO busy SELECT sum(x) FROM c"""


class Busy:
    """Keeps ``db``'s writer thread committing groups back to back until ``stop`` (``MOST``
    groups at most): each unit queues the next one itself, so two groups are always queued
    and no other thread of this process competes with the writer thread. The first unit of
    each group counts it in the table ``groups``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.groups = 0
        self.running = threading.Event()  # set after the first few groups
        self.stopped = False
        self.last: Future[None] | None = None
        self._group: Any = None
        for _ in range(2 * MAX_GROUP):
            self.last = db.submit(self._unit)

    def _unit(self) -> None:
        if self.stopped or self.groups >= MOST:
            self.running.set()
            return
        self.last = self.db.submit(self._unit)
        group = getattr(self.db._local, "group", None)
        with self.db.write() as conn:
            conn.exec_driver_sql(_WORK, (WORK,))
            if group is None or group is not self._group:
                self._group = group
                conn.exec_driver_sql("UPDATE groups SET n = n + 1")
                self.groups += 1
        if self.groups >= 3:
            self.running.set()

    def stop(self) -> None:
        self.stopped = True
        while self.last is not None and not self.last.done():
            self.last.result(WAIT)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path}/turns.db")
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE busy (n INTEGER)")
        conn.exec_driver_sql("CREATE TABLE groups (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO groups VALUES (0)")
        conn.exec_driver_sql("CREATE TABLE other (turn INTEGER, groups_waited INTEGER)")
    yield db
    db.dispose()


def test_another_process_writes_within_two_groups_of_a_busy_writer_thread(
    api: Database,
) -> None:
    busy = Busy(api)
    try:
        assert busy.running.wait(WAIT)
        other = subprocess.run(
            [sys.executable, "-c", OTHER, api.url, str(TURNS)],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
    finally:
        busy.stop()
    assert other.returncode == 0, other.stderr
    with api.read() as conn:
        waited = [r[0] for r in conn.exec_driver_sql("SELECT groups_waited FROM other")]
    assert busy.groups < MOST  # the writer thread was busy all along the other's turns
    assert len(waited) == TURNS
    assert max(waited) <= 2, waited
