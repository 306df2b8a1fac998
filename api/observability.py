"""Metrics (Prometheus) and structured logs with a request id.

* ``/metrics``: requests by route template and status, request latency, transitions by
  trigger, guard refusals by guard, SLA breaches by clock, database time, event streams,
  webhook attempts by outcome, webhook delivery lag, dead letters. With several uvicorn
  workers, ``tierflow serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` so every worker's figures are
  summed. The per-request figures (requests, latency, transitions, database time) are added up
  in the process and handed to the metrics once a second and before a scrape
  (:mod:`api.tally`): another worker's figures reach a scrape at most a second late.
* Every response carries ``X-Request-ID`` (the caller's, when it sends a sane one, else 128
  random bits from :mod:`random`: an identifier, not a secret - ``os.urandom`` is a system call
  that hands the interpreter to other threads on every request); log lines are JSON and carry
  it. Headers are never logged, so tokens never reach a log.
* The access log: one JSON line per request (``method``, ``route`` template, ``status``, ``ms``,
  ``request_id``, ``account`` slug from the path) at level ``info`` on the ``tierflow.http``
  logger; ``TIERFLOW_ACCESS_LOG=false`` keeps only the warnings (5xx and slow requests).
  Lines are formatted where they are logged and written by a thread of their own
  (:class:`LineWriter`): a write to stderr on the event loop hands the interpreter to other
  threads for the time of the system call (measured: 50-80 us per request in the server).
* Routes that are not API routes (``/docs``, ``/openapi.json``, the ``/ui`` static files) are
  labelled by their path or mount point; only a path no route matches is ``unmatched``.

The middleware is plain ASGI (no ``BaseHTTPMiddleware``): it adds a few microseconds per request.

FastAPI's own OpenTelemetry instrumentation (spans, metrics, logs through the global providers)
is on when an OpenTelemetry SDK is installed, or ``FASTAPI_OTEL_AUTO_CONFIGURE=true``
(:func:`fastapi_telemetry`); without one no provider can be configured, and FastAPI would look
for one on every request.
"""

from __future__ import annotations

import contextvars
import importlib.util
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

from fastapi import FastAPI
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow import EventRecord, TicketView, Tierflow
from workflow.webhooks_dispatch import Outcome

from .tally import Tally

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("tierflow.http")

REQUESTS = Counter("tierflow_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "tierflow_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TRANSITIONS = Counter("tierflow_transitions_total", "Transitions fired", ["workflow", "trigger"])
GUARD_REFUSALS = Counter(
    "tierflow_guard_refusals_total", "Triggers refused by a guard", ["trigger", "guard"]
)
SLA_BREACHES = Counter("tierflow_sla_breaches_total", "SLA breaches recorded", ["clock"])
DB_SECONDS = Counter(
    "tierflow_db_seconds_total", "Time spent in database transactions (connect to commit)"
)
STREAM_CLIENTS = Gauge(
    "tierflow_stream_clients", "Event streams open (SSE)", multiprocess_mode="livesum"
)
STREAM_EVENTS = Counter("tierflow_stream_events_total", "Events sent on event streams", ["type"])
WEBHOOK_DELIVERIES = Counter(
    "tierflow_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, failed (retry scheduled), dead",
    ["outcome"],
)
WEBHOOK_LAG = Histogram(
    "tierflow_webhook_delivery_lag_seconds",
    "From an event's commit to its receiver's 2xx",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
WEBHOOK_DEAD_LETTERS = Counter(
    "tierflow_webhook_dead_letters_total", "Webhook deliveries dead-lettered after their retries"
)

TALLY = Tally()
"""The per-request figures, added up here and handed to the metrics in batches."""
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
"""Metric children per (method, route template, status): ``labels()`` on every request costs
a lock and a tuple of label strings."""
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonFormatter(logging.Formatter):
    _encode = json.JSONEncoder(default=str).encode  # json.dumps(default=...) builds one per call

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def format(self, record: logging.LogRecord) -> str:
        second, text = self._second
        if int(record.created) != second:  # the date and time change once a second
            second, text = int(record.created), self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        line: dict[str, Any] = {
            "ts": f"{text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return self._encode(line)


class LineWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose writes happen in a thread of its own.

    ``emit`` formats the line in the caller's thread (the request id is the caller's context)
    and queues it; the writer thread writes what is queued, in order, in one write every
    ``interval`` seconds (at once for a warning or worse). :meth:`flush` writes everything
    queued so far before it returns: the app's shutdown and :func:`logging.shutdown` (at
    exit) call it, so a stopped server loses no line."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.05) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.interval = interval
        self._lines: deque[str] = deque()
        self._writing = threading.Lock()  # one writer at a time: the thread or a flush
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        if self._closed:  # at exit, after close: written here and now
            self.flush()
        elif self._thread is None:
            self._start()
        if record.levelno >= logging.WARNING:
            self._wake.set()

    def _start(self) -> None:
        with self._writing:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="tierflow-log-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write every line queued so far (in order), then flush the stream."""
        with self._writing:
            lines = []
            queued = self._lines
            while queued:
                lines.append(queued.popleft())
            if lines:
                try:
                    self.stream.write(self.terminator.join(lines) + self.terminator)
                    self.stream.flush()
                except (OSError, ValueError):  # the stream is gone: nowhere left to say so
                    pass

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._wake.set()
        super().close()


def configure_logging(level: str = "INFO") -> None:
    """The service's logs: JSON lines on stderr, written by a :class:`LineWriter`. Records
    carry no thread or process names (no line shows them; each costs every record a lookup)."""
    logging.Formatter.converter = time.gmtime
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = LineWriter()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("tierflow")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _template(routes: list[BaseRoute], path: str, root_path: str, method: str) -> str:
    """The route (or mount) a request went to when routing left no ``route`` in its scope
    (Starlette routes and mounts: docs, OpenAPI, static files); else ``unmatched``."""
    probe: Scope = {"type": "http", "path": path, "root_path": root_path, "method": method}
    for route in routes:
        match, _ = route.matches(probe)
        if match != Match.NONE:
            return getattr(route, "path", None) or "unmatched"
    return "unmatched"


class Observability:
    """ASGI middleware: request id, request metrics, the access log (one JSON line per request;
    5xx and slow requests as warnings)."""

    access_log = True
    routes: list[BaseRoute] = []  # the app's routes, to label non-API routes

    def __init__(
        self,
        app: ASGIApp,
        slow_seconds: float = 1.0,
        access_log: bool = True,
        routes: list[BaseRoute] | None = None,
    ) -> None:
        self.app = app
        self.slow = slow_seconds
        self.access_log = access_log
        self.routes = routes if routes is not None else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if _SANE_ID.match(incoming) else f"{random.getrandbits(128):032x}"
        token = request_id.set(rid)
        path, root_path = scope["path"], scope.get("root_path", "")
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            method = scope["method"]
            template = getattr(route, "path", None) or _template(
                self.routes, path, root_path, method
            )
            key = (method, template, status)
            children = _children.get(key)
            if children is None:
                children = _children[key] = (
                    REQUESTS.labels(method, template, str(status)),
                    LATENCY.labels(method, template),
                )
            TALLY.inc(children[0])
            TALLY.observe(children[1], elapsed)
            level = logging.WARNING if status >= 500 or elapsed >= self.slow else logging.INFO
            if (level > logging.INFO or self.access_log) and log.isEnabledFor(level):
                # the record made directly: Logger.log would look for its caller in the stack
                record = log.makeRecord(
                    log.name,
                    level,
                    "(access log)",
                    0,
                    "request",
                    (),
                    None,
                    extra={
                        "fields": {
                            "method": method,
                            "route": template,
                            "status": status,
                            "ms": round(elapsed * 1000, 1),
                            "account": scope.get("path_params", {}).get("acct"),
                        }
                    },
                )
                log.handle(record)
            request_id.reset(token)


def observe_engine(engine: Tierflow) -> None:
    """Count transitions and breaches as the engine commits them; time its transactions."""

    fired: dict[tuple[str, str], Any] = {}  # the counter's child per (workflow, trigger)

    def on_commit(view: TicketView, events: list[EventRecord]) -> None:
        for e in events:
            if e.kind == "transition" and e.trigger:
                key = (view.workflow, e.trigger)
                child = fired.get(key)
                if child is None:
                    child = fired[key] = TRANSITIONS.labels(*key)
                TALLY.inc(child)
            elif e.kind == "sla_breached":
                SLA_BREACHES.labels(str(e.data.get("clock"))).inc()

    if on_commit not in engine.observers:
        engine.observers.append(on_commit)
    engine.db.on_transaction = _db_time


def _db_time(seconds: float) -> None:
    TALLY.inc(DB_SECONDS, seconds)


def observe_webhook(outcome: Outcome) -> None:
    """The dispatcher's observer: every attempt by outcome, the lag of each 2xx, dead letters."""
    WEBHOOK_DELIVERIES.labels(outcome.outcome).inc()
    if outcome.lag_seconds is not None:
        WEBHOOK_LAG.observe(outcome.lag_seconds)
    if outcome.outcome == "dead":
        WEBHOOK_DEAD_LETTERS.inc()


def count_guard_refusal(trigger: str, guards: list[str]) -> None:
    for g in guards:
        GUARD_REFUSALS.labels(trigger, g).inc()


def flush() -> None:
    """Hand the tallied figures to the metrics and write every log line queued so far (the
    app's shutdown: no figure and no line is left behind)."""
    TALLY.flush()
    for handler in logging.getLogger("tierflow").handlers:
        handler.flush()


def fastapi_telemetry() -> dict[str, bool]:
    """``FastAPI(telemetry=...)``: FastAPI's defaults when OpenTelemetry can be configured (an
    SDK is installed, or FastAPI is to configure it from the environment); else its spans,
    metrics and logs off - they could reach no provider, and checking for one on every request
    cost ~2 % of a worker's time under load."""
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").strip().lower() == "true":
        return {}
    try:
        if importlib.util.find_spec("opentelemetry.sdk") is not None:
            return {}
    except ModuleNotFoundError:  # not even the OpenTelemetry API
        pass
    return {"tracing": False, "metrics": False, "logs": False}


def install(app: FastAPI, *, access_log: bool = True) -> None:
    app.add_middleware(Observability, access_log=access_log, routes=app.router.routes)


def metrics_payload() -> bytes:
    """The Prometheus exposition of this process (or of every worker, in multiprocess mode)."""
    TALLY.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
