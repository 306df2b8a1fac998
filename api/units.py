"""Units of work from ``async`` routes, answered after their COMMIT.

On a SQLite file the engine's units of work are group-committed (``Database.serialised``).
An ``async`` route queues its engine call (``Database.enqueue``) and awaits the answer; at the
end of the event loop's iteration, the loop runs what is queued itself (``lead_queued``): the
units of every request read in that iteration share one transaction, and no thread hands the
interpreter to another - the writer thread that ran them before waited for the interpreter
after each statement while the loop held it (the medians of three interleaved runs: +0 to
+11 % triggers per second; ``bench/FINDINGS.md``). The loop never waits for another writer of
the file: when another process (the webhook dispatcher, a CLI command, a second worker) has its
turn, the database's writer thread takes the queue and waits instead, and the loop goes on
serving. The route is answered only after the COMMIT that holds its writes, as a ``def`` route
is. Elsewhere (PostgreSQL, in-memory
SQLite) each call runs in its own transaction on one of a few unit threads (``UNIT_THREADS``),
not in the thread pool of 40 that ``def`` routes share: fewer threads contending for the
interpreter and for row locks (measured on PostgreSQL: 4-23 % more triggers per second, the
slowest request half as slow).

The answers of one group (or of the unit threads) reach the waiting requests in one
callback, not one per request: each future completed is collected, and the first of a burst
schedules the callback that resolves them all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from workflow import Tierflow
from workflow.db import Database

R = TypeVar("R")


class _Answers:
    """Futures completed by whoever ran their units (the loop itself, the writer thread, a
    unit thread), resolved on the event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.get_ident()  # the loop's
        self.lock = threading.Lock()
        self.ready: list[tuple[Future[Any], asyncio.Future[Any]]] = []
        self.leading: set[Database] = set()  # databases whose queue the loop runs next

    def lead(self, db: Database) -> None:
        """Run ``db``'s queued units at the end of this iteration (once per iteration)."""
        if db not in self.leading:
            self.leading.add(db)
            self.loop.call_soon(self._lead, db)

    def _lead(self, db: Database) -> None:
        self.leading.discard(db)
        db.lead_queued()

    def watch(self, done: Future[R]) -> asyncio.Future[R]:
        waiter: asyncio.Future[R] = self.loop.create_future()
        done.add_done_callback(lambda f: self._completed(f, waiter))
        return waiter

    def _completed(self, done: Future[Any], waiter: asyncio.Future[Any]) -> None:
        with self.lock:
            first = not self.ready
            self.ready.append((done, waiter))
        if not first:
            return
        if threading.get_ident() == self.thread:  # no wake-up write to the loop's own pipe
            self.loop.call_soon(self._resolve)
        else:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        with self.lock:
            ready, self.ready = self.ready, []
        for done, waiter in ready:
            if waiter.done():  # the request was cancelled
                continue
            error = done.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(done.result())


_current: _Answers | None = None
"""The answers of the loop that ran the last unit: one event loop per process, as served
(another loop - a test's - gets answers of its own, and the old ones still answer theirs)."""


async def run_unit(engine: Tierflow, call: Callable[[], R]) -> R:
    """``call()`` (an engine call that runs one unit of work), answered after its COMMIT."""
    global _current
    loop = asyncio.get_running_loop()
    answers = _current
    if answers is None or answers.loop is not loop:
        answers = _current = _Answers(loop)
    db = engine.db
    if not db.group_commit:
        return await answers.watch(db.submit(call))
    waiter = answers.watch(db.enqueue(call))
    answers.lead(db)
    return await waiter
