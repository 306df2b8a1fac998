"""The live event stream against a real uvicorn on 127.0.0.1: resume after ``Last-Event-ID``
with no gap and no duplicate, events committed while connected, heartbeats, resync."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY

from api.app import create_app
from api.settings import Settings
from api.wire import OneWriteProtocol
from workflow import Tierflow, outbox

from .conftest import FakeClock
from .live_server import free_port
from .scenarios import ACCOUNT, TECH, new_ticket

TOKEN = "stream-test-admin"


@pytest.fixture
def base_url(tf: Tierflow, db_url: str) -> Iterator[str]:
    settings = Settings(
        database_url=db_url,
        admin_token=TOKEN,
        access_log=False,
        stream_poll_seconds=0.02,
        stream_heartbeat_seconds=0.3,
    )
    app = create_app(settings, engine=tf, background=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=2,
            http=OneWriteProtocol,  # as `tierflow serve` runs it (api/wire.py)
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: 5 s
        if server.started:
            break
        time.sleep(0.01)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _read(
    url: str, last_event_id: str | None, count: int, *, while_open: Any = None
) -> list[dict[str, Any]]:
    """The first ``count`` SSE items (events and comments), then disconnect."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    items: list[dict[str, Any]] = []
    with (
        httpx.Client(timeout=5) as client,
        client.stream("GET", f"{url}/v1/accounts/{ACCOUNT}/stream", headers=headers) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        item: dict[str, Any] = {}
        for line in r.iter_lines():
            if line.startswith(":"):
                items.append({"comment": line[1:].strip()})
            elif line == "":
                if item and "retry" not in item:
                    items.append(item)
                item = {}
            else:
                name, _, value = line.partition(": ")
                item[name] = value
            if while_open is not None and items:
                while_open()
                while_open = None
            if len(items) >= count:
                break
    return items


def _fire_some(tf: Tierflow, n: int) -> None:
    for _ in range(n):
        t = new_ticket(tf, TECH)
        tf.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent", actor="a")


def test_resume_after_last_event_id_has_no_gap_and_no_duplicate(
    tf: Tierflow, base_url: str
) -> None:
    _fire_some(tf, 3)  # sequences 1..6
    first = _read(base_url, "0", 4)
    assert [int(e["id"]) for e in first] == [1, 2, 3, 4]
    assert [e["event"] for e in first] == ["ticket.created", "ticket.transitioned"] * 2
    data = json.loads(first[1]["data"])
    assert (data["sequence"], data["type"], data["actor"], data["role"]) == (
        2,
        "ticket.transitioned",
        "a",
        "l1_agent",
    )
    assert (data["ticket"]["state"], data["ticket"]["version"]) == ("l1_triage", 2)

    _fire_some(tf, 1)  # 7, 8: committed while nobody listens
    open_streams: list[float | None] = []

    def while_open() -> None:  # 9 and 10 are committed while this client is connected
        open_streams.append(REGISTRY.get_sample_value("tierflow_stream_clients"))
        _fire_some(tf, 1)

    sent_before = REGISTRY.get_sample_value(
        "tierflow_stream_events_total", {"type": "ticket.transitioned"}
    )
    second = _read(base_url, "4", 6, while_open=while_open)
    assert [int(e["id"]) for e in second] == [5, 6, 7, 8, 9, 10]
    assert open_streams[0] is not None and open_streams[0] >= 1
    sent_after = REGISTRY.get_sample_value(
        "tierflow_stream_events_total", {"type": "ticket.transitioned"}
    )
    assert sent_before is not None and sent_after is not None
    assert sent_after - sent_before >= 3  # 6, 8, 10


def test_a_new_client_starts_from_now_and_idle_streams_get_heartbeats(
    tf: Tierflow, base_url: str
) -> None:
    _fire_some(tf, 1)
    items = _read(base_url, None, 2, while_open=None)
    assert items == [{"comment": "heartbeat"}, {"comment": "heartbeat"}]


def test_a_resume_point_past_the_retention_gets_a_resync_event(
    tf: Tierflow, clock: FakeClock, base_url: str
) -> None:
    _fire_some(tf, 2)  # 1..4
    clock.advance(days=8)
    _fire_some(tf, 1)  # 5, 6
    assert outbox.prune(tf, before=clock() - timedelta(days=7)) == 4
    items = _read(base_url, "2", 3)
    assert items[0]["event"] == "resync"
    assert json.loads(items[0]["data"])["oldest_available"] == 5
    assert [int(e["id"]) for e in items[1:]] == [5, 6]
    # events still held resume as usual
    assert [int(e["id"]) for e in _read(base_url, "5", 1)] == [6]


def test_a_last_event_id_that_is_not_a_number_is_refused(tf: Tierflow, base_url: str) -> None:
    r = httpx.get(
        f"{base_url}/v1/accounts/{ACCOUNT}/stream",
        headers={"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": "abc"},
        timeout=5,
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "Last-Event-ID: 'abc' is not an id this stream sent"
