"""api.tally: figures added up in the process reach the Prometheus metrics exactly as direct
``inc`` / ``observe`` calls would have left them - only later (at a flush)."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from api.tally import Tally

WAIT = 10.0
BUCKETS = (0.001, 0.01, 0.1, 1.0)
# amounts on, just above and just below each bound, zero, and beyond the last bound (+Inf)
AMOUNTS = [0.0, 0.0005, 0.001, 0.0010001, 0.0099, 0.01, 0.05, 0.1, 0.99, 1.0, 1.5, 30.0]


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    counter = Counter("t_requests_total", "requests", ["route"], registry=registry)
    histogram = Histogram("t_seconds", "latency", ["route"], buckets=BUCKETS, registry=registry)
    return counter, histogram


def _figures(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, without the creation times (the two registries differ there)."""
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]


def test_a_flush_leaves_the_metrics_as_direct_calls_would() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    d_counter, d_histogram = _metrics(direct)
    t_counter, t_histogram = _metrics(tallied)
    tally = Tally(wait=lambda _: True)  # no flushing thread: flushes below only
    for i, amount in enumerate(AMOUNTS):
        route = "a" if i % 3 else "b"
        d_counter.labels(route).inc()
        d_counter.labels(route).inc(amount)
        d_histogram.labels(route).observe(amount)
        tally.inc(t_counter.labels(route))
        tally.inc(t_counter.labels(route), amount)
        tally.observe(t_histogram.labels(route), amount)
    assert t_counter.labels("a")._value.get() == 0  # nothing yet: added up in the tally
    assert t_histogram.labels("a")._sum.get() == 0
    tally.flush()
    assert _figures(tallied) == _figures(direct)
    tally.flush()  # nothing left to add: the same figures
    assert _figures(tallied) == _figures(direct)


@pytest.mark.parametrize(
    ("amount", "bucket"), [(0.0, "0.001"), (0.001, "0.001"), (0.0011, "0.01"), (1.0, "1.0")]
)
def test_an_observation_counts_in_the_first_bucket_whose_bound_it_does_not_exceed(
    amount: float, bucket: str
) -> None:
    registry = CollectorRegistry()
    _, histogram = _metrics(registry)
    tally = Tally(wait=lambda _: True)
    tally.observe(histogram.labels("a"), amount)
    tally.flush()
    bounds = ["0.001", "0.01", "0.1", "1.0", "+Inf"]
    expected = [0.0 if float(b) < float(bucket) else 1.0 for b in bounds]
    got = [registry.get_sample_value("t_seconds_bucket", {"route": "a", "le": b}) for b in bounds]
    assert got == expected
    assert registry.get_sample_value("t_seconds_sum", {"route": "a"}) == amount


def test_the_flushing_thread_starts_with_the_first_figure_and_flushes_every_interval() -> None:
    registry = CollectorRegistry()
    counter, _ = _metrics(registry)
    gate, waits = threading.Event(), []

    def wait(interval: float) -> bool:  # the thread's sleep between flushes
        waits.append(interval)
        assert gate.wait(WAIT)
        return len(waits) > 1  # one flush, then the thread ends

    tally = Tally(0.25, wait=wait)
    tally.inc(counter.labels("a"))
    tally.inc(counter.labels("a"))
    thread = tally._thread
    assert thread is not None and thread.name == "tierflow-tally" and thread.daemon
    assert counter.labels("a")._value.get() == 0
    gate.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert waits == [0.25, 0.25]
    assert counter.labels("a")._value.get() == 2
    tally.inc(counter.labels("a"))
    assert tally._thread is thread  # one thread per tally, however many figures


def test_figures_added_from_many_threads_during_flushes_are_all_counted() -> None:
    registry = CollectorRegistry()
    counter, histogram = _metrics(registry)
    tally = Tally(wait=lambda _: True)
    done = threading.Event()

    def add() -> None:
        for _ in range(5_000):
            tally.inc(counter.labels("a"))
            tally.observe(histogram.labels("a"), 0.002)

    def flush() -> None:
        while not done.is_set():
            tally.flush()

    flusher = threading.Thread(target=flush)
    flusher.start()
    adders = [threading.Thread(target=add) for _ in range(4)]
    for t in adders:
        t.start()
    for t in adders:
        t.join(WAIT)
    done.set()
    flusher.join(WAIT)
    tally.flush()
    assert counter.labels("a")._value.get() == 20_000
    assert registry.get_sample_value("t_seconds_bucket", {"route": "a", "le": "0.01"}) == 20_000
    assert registry.get_sample_value("t_seconds_bucket", {"route": "a", "le": "0.001"}) == 0
