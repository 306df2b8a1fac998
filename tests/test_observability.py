"""The access log (one JSON line per request, its fields exactly, never headers or bodies; a
setting turns it down) and /metrics labels for routes that are not API routes."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import observability
from api.app import create_app
from api.settings import Settings
from tests.api_client import ADMIN_TOKEN, Api, auth
from tests.conftest import FakeClock
from workflow import Tierflow


@pytest.fixture
def engine(db_url: str, clock: FakeClock) -> Iterator[Tierflow]:
    tf = Tierflow(db_url, clock=clock)
    yield tf
    tf.db.dispose()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the service's JSON log handler writes, as ``serve`` configures it."""
    observability.configure_logging()
    stream = io.StringIO()
    handler = logging.getLogger("tierflow").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    logging.getLogger("tierflow").handlers.clear()


def client_for(engine: Tierflow, **settings: Any) -> TestClient:
    app = create_app(Settings(admin_token=ADMIN_TOKEN, **settings), engine=engine, background=False)
    return TestClient(app)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(x) for x in stream.getvalue().splitlines()]


def test_one_json_line_per_request_with_exactly_these_fields(
    engine: Tierflow, log_lines: io.StringIO
) -> None:
    with client_for(engine) as c:
        acme = Api(c, "acme")
        t = acme.create()
        observability.flush()  # the lines so far (written by the log's own thread)
        log_lines.truncate(0)
        log_lines.seek(0)
        c.post(
            acme.url(f"/tickets/{t['id']}/triggers/triage"),
            headers={**acme.as_("l1_agent"), "X-Request-ID": "req-1"},
            json={"note": "secret body text"},
        )
        c.get(acme.url("/tickets/999999"), headers={**acme.as_("customer"), "X-Request-ID": "r2"})
        c.get("/nowhere", headers={"X-Request-ID": "r3"})
    lines = lines_of(log_lines)
    for line in lines:
        assert isinstance(line.pop("ts"), str)
        assert isinstance(line.pop("ms"), float | int)
        assert line.pop("pid") == os.getpid()  # which worker served it
    assert lines == [
        {
            "level": "info",
            "logger": "tierflow.http",
            "msg": "request",
            "request_id": "req-1",
            "method": "POST",
            "route": "/v1/accounts/{acct}/tickets/{ticket_id}/triggers/{trigger}",
            "status": 200,
            "account": "acme",
        },
        {
            "level": "info",
            "logger": "tierflow.http",
            "msg": "request",
            "request_id": "r2",
            "method": "GET",
            "route": "/v1/accounts/{acct}/tickets/{ticket_id}",
            "status": 404,
            "account": "acme",
        },
        {
            "level": "info",
            "logger": "tierflow.http",
            "msg": "request",
            "request_id": "r3",
            "method": "GET",
            "route": "unmatched",
            "status": 404,
            "account": None,
        },
    ]
    text = log_lines.getvalue()
    assert "secret body text" not in text
    assert all(token not in text for token in acme.tokens.values())


def test_access_log_false_logs_no_ordinary_request(
    engine: Tierflow, log_lines: io.StringIO
) -> None:
    with client_for(engine, access_log=False) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/nowhere").status_code == 404
    assert log_lines.getvalue() == ""


def test_the_access_log_setting_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIERFLOW_ACCESS_LOG", "false")
    assert Settings().access_log is False
    monkeypatch.delenv("TIERFLOW_ACCESS_LOG")
    assert Settings().access_log is True


def test_metrics_label_docs_and_static_routes_by_route(engine: Tierflow) -> None:
    with client_for(engine) as c:
        for path in ("/docs", "/openapi.json", "/ui/", "/ui/index.html", "/nowhere"):
            c.get(path)
        text = c.get("/metrics", headers=auth(ADMIN_TOKEN)).text
    counted = {
        line.split('route="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("tierflow_http_requests_total{") and 'method="GET"' in line
    }
    assert {"/docs", "/openapi.json", "/ui", "unmatched"} <= counted
    assert not any(r.startswith("/ui/") or r == "/nowhere" for r in counted)


class _Recorded(io.StringIO):
    """A stream that notes which thread made each write and says when ``want`` lines came."""

    def __init__(self, want: int) -> None:
        super().__init__()
        self.want = want
        self.threads: list[str] = []
        self.complete = threading.Event()

    def write(self, s: str) -> int:
        self.threads.append(threading.current_thread().name)
        n = super().write(s)
        if self.getvalue().count("\n") >= self.want:
            self.complete.set()
        return n


def test_the_log_is_written_by_a_thread_of_its_own_every_line_in_order() -> None:
    """The event loop only queues a line: the write to stderr (a system call that lets other
    threads take the interpreter meanwhile) happens in the writer thread."""
    observability.configure_logging()
    handler = logging.getLogger("tierflow").handlers[0]
    assert isinstance(handler, observability.LineWriter)
    stream = _Recorded(want=500)
    handler.setStream(stream)
    try:
        for i in range(500):
            observability.log.info("request", extra={"fields": {"n": i}})
        assert stream.complete.wait(10), stream.getvalue()
        assert [line["n"] for line in lines_of(stream)] == list(range(500))
        assert set(stream.threads) == {"tierflow-log-writer"}
    finally:
        logging.getLogger("tierflow").handlers.clear()


def test_lines_still_queued_are_written_when_logging_shuts_down() -> None:
    """At exit (``logging.shutdown``, after a SIGTERM too) and at the app's shutdown
    (``flush``) nothing queued is lost."""
    stream = io.StringIO()
    handler = observability.LineWriter(stream, interval=3600)  # never writes by itself
    handler.setFormatter(observability.JsonFormatter())
    logger = logging.getLogger("tierflow.test-writer")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(3):
            logger.info("line %d", i)
        assert stream.getvalue() == ""  # queued
        handler.flush()
        assert [line["msg"] for line in lines_of(stream)] == ["line 0", "line 1", "line 2"]
        logger.info("line 3")
        logger.info("line 4")
        handler.close()  # what logging.shutdown does at exit: flush, then close
        assert [line["msg"] for line in lines_of(stream)] == [f"line {i}" for i in range(5)]
        logger.info("line 5")  # after close: written at once
        assert lines_of(stream)[-1]["msg"] == "line 5"
    finally:
        logger.removeHandler(handler)


def test_request_ids_are_made_without_a_system_call(
    engine: Tierflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request without a usable X-Request-ID gets 32 hex digits, distinct per request, made
    without ``os.urandom`` (a system call that releases the interpreter on the event loop)."""

    def no_urandom(n: int) -> bytes:
        raise AssertionError("os.urandom on the request path")

    with client_for(engine) as c:
        monkeypatch.setattr(os, "urandom", no_urandom)
        ids = [c.get("/healthz").headers["x-request-id"] for _ in range(50)]
        monkeypatch.undo()
    assert len(set(ids)) == 50
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_fastapi_opentelemetry_is_off_without_an_sdk_and_on_when_it_can_be_configured(
    engine: Tierflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an OpenTelemetry SDK FastAPI's instrumentation could reach no provider: it is
    off (no check per request). With one installed, or FastAPI asked to configure it from the
    environment, FastAPI's defaults stand."""
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    off = {"tracing": False, "metrics": False, "logs": False}
    installed = importlib.util.find_spec("opentelemetry.sdk") is not None
    assert observability.fastapi_telemetry() == ({} if installed else off)
    app = create_app(Settings(admin_token=ADMIN_TOKEN), engine=engine, background=False)
    if not installed:
        assert not app._native_telemetry.enabled()  # type: ignore[attr-defined]
        assert {k: app._telemetry[k] for k in off} == off  # type: ignore[attr-defined]
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert observability.fastapi_telemetry() == {}
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # an SDK installed
    assert observability.fastapi_telemetry() == {}
