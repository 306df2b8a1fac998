"""Units of work from ``async`` routes, off the event loop.

On a SQLite file the engine's units of work are group-committed (``Database.serialised``).
An ``async`` route hands its engine call to the database's writer thread
(``Database.submit``) and awaits the answer: no thread-pool hop per request, and the writer
answers a whole group of requests at once. The route is answered only after the COMMIT that
holds its writes, as a ``def`` route is. Elsewhere (PostgreSQL, in-memory SQLite) ``submit``
runs each call in its own transaction on one of a few unit threads (``UNIT_THREADS``), not in
the thread pool of 40 that ``def`` routes share: fewer threads contending for the interpreter
and for row locks (measured on PostgreSQL: 4-23 % more triggers per second, the slowest request
half as slow).

The answers of one group (or of the unit threads) reach the event loop in one callback, not
one per request: each future completed by the writer thread is collected, and the first of a
burst schedules the callback that resolves them all.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from workflow import Tierflow

R = TypeVar("R")


class _Answers:
    """Futures completed in the writer thread, resolved on the event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.ready: list[tuple[Future[Any], asyncio.Future[Any]]] = []

    def watch(self, done: Future[R]) -> asyncio.Future[R]:
        waiter: asyncio.Future[R] = self.loop.create_future()
        done.add_done_callback(lambda f: self._completed(f, waiter))
        return waiter

    def _completed(self, done: Future[Any], waiter: asyncio.Future[Any]) -> None:
        with self.lock:
            first = not self.ready
            self.ready.append((done, waiter))
        if first:
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


_answers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Answers] = (
    weakref.WeakKeyDictionary()
)


async def run_unit(engine: Tierflow, call: Callable[[], R]) -> R:
    """``call()`` (an engine call that runs one unit of work), answered after its COMMIT."""
    loop = asyncio.get_running_loop()
    answers = _answers.get(loop)
    if answers is None:
        answers = _answers[loop] = _Answers(loop)
    return await answers.watch(engine.db.submit(call))
