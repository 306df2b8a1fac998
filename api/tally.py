"""Hot-path metrics added up in the process and handed to Prometheus in batches.

With several workers, or with the webhook dispatcher in a process of its own (the default),
``prometheus_client`` runs in multiprocess mode: every ``inc`` or ``observe`` takes a lock,
asks the kernel for the process id and writes the process's mmap'd file. A trigger request
made five of them (its request count, latency sum and bucket, its transition, its database
time): ~4 % of the worker's time, measured under the benchmark's load. A :class:`Tally` adds
to plain numbers under one lock instead, and :meth:`Tally.flush` hands the sums over:
every ``interval`` seconds from a thread of its own (a daemon, started by the first
addition), before ``/metrics`` answers (a scrape of this process is exact), and when the app
stops. Another worker's figures reach a scrape at most ``interval`` seconds late; a worker
killed outright loses at most its last ``interval``.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

__all__ = ["Tally"]


class Tally:
    """Counts and histogram observations per metric child (``Counter.labels(...)``,
    ``Histogram.labels(...)``, or an unlabelled metric), flushed in batches."""

    def __init__(
        self, interval: float = 1.0, *, wait: Callable[[float], bool] | None = None
    ) -> None:
        self.interval = interval
        self._wait = wait or threading.Event().wait  # True ends the flushing thread
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._histograms: dict[Any, list[float]] = {}  # child -> [sum, count per bucket...]
        self._thread: threading.Thread | None = None

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        with self._lock:
            counts = self._counts
            counts[counter] = counts.get(counter, 0.0) + amount
        if self._thread is None:
            self._start()

    def observe(self, histogram: Any, amount: float) -> None:
        """As ``histogram.observe(amount)``: the first bucket whose bound is at least
        ``amount`` counts it (the last bound is +Inf). The histogram's bounds, sum and bucket
        values are ``prometheus_client``'s own (``_upper_bounds``, ``_sum``, ``_buckets``: what
        its ``observe`` uses); ``tests/test_tally.py`` compares the exposition with direct
        calls, so a change of them fails there, not in production."""
        bounds = histogram._upper_bounds
        with self._lock:
            tally = self._histograms.get(histogram)
            if tally is None:
                tally = self._histograms[histogram] = [0.0] * (len(bounds) + 1)
            tally[0] += amount
            tally[1 + bisect_left(bounds, amount)] += 1
        if self._thread is None:
            self._start()

    def flush(self) -> None:
        """Hand everything added so far to the metrics."""
        with self._lock:
            counts, self._counts = self._counts, {}
            histograms, self._histograms = self._histograms, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, tally in histograms.items():
            # Histogram.observe's own steps (sum, then the bucket), once per bucket
            histogram._sum.inc(tally[0])
            for bucket, n in zip(histogram._buckets, tally[1:], strict=True):
                if n:
                    bucket.inc(n)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="tierflow-tally", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._wait(self.interval):
            self.flush()
