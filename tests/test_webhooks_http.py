"""The dispatcher's HTTP transport (``api.webhooks_http.HttpSender``) against real receivers on
127.0.0.1: kept-alive connections, a receiver that drops an idle one, a slow one, a long answer,
a redirect; and the dispatcher process that ``serve`` starts ends with its parent."""

from __future__ import annotations

import json
import os
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import webhooks_http, webhooks_process
from api.webhooks_http import MAX_ANSWER, HttpSender
from workflow import Tierflow
from workflow.webhooks import Webhooks
from workflow.webhooks_dispatch import Dispatcher, Request
from workflow.webhooks_urls import Target

from .live_server import live_server, seed
from .test_webhooks_crash import ENV
from .webhook_receiver import receiver

Handler = Callable[[BaseHTTPRequestHandler], None]


class _Server:
    """An HTTP/1.1 receiver (keep-alive) that notes each request's connection (client port)."""

    def __init__(self, answer: Handler, tls: ssl.SSLContext | None = None) -> None:
        seen = self.seen = []  # type: list[tuple[int, str, str]]

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                seen.append((self.client_address[1], self.path, body))
                answer(self)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        if tls is not None:  # HTTPS: the listening socket hands out TLS connections
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def connections(self) -> int:
        return len({port for port, _path, _body in self.seen})


@contextmanager
def server(answer: Handler, tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    s = _Server(answer, tls)
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def _answer(status: int, body: bytes = b"", **headers: str) -> Handler:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return answer


def _request(port: int, body: str = "{}") -> Request:
    target = Target(f"http://hooks.test:{port}/in?x=1", "http", "hooks.test", port, "127.0.0.1")
    return Request(target, {"content-type": "application/json"}, body.encode())


def test_requests_share_one_kept_alive_connection() -> None:
    with server(_answer(204)) as rx:
        sender = HttpSender(timeout=2)
        try:
            sent = [sender(_request(rx.port, f'{{"n":{i}}}')) for i in range(5)]
        finally:
            sender.close()
    assert [(s.status_code, s.error, s.ok) for s in sent] == [(204, None, True)] * 5
    assert rx.connections() == 1
    assert [(path, body) for _port, path, body in rx.seen] == [
        ("/in?x=1", f'{{"n":{i}}}') for i in range(5)
    ]


@pytest.mark.parametrize("check_after", [0.0, 60.0])
def test_a_connection_the_receiver_dropped_is_replaced_and_the_request_made_once(
    check_after: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before reuse (idle long enough), or found closed when used: either way the
    request is made once, on a new connection."""
    monkeypatch.setattr(webhooks_http, "CHECK_AFTER", check_after)

    def answer_then_drop(h: BaseHTTPRequestHandler) -> None:
        _answer(200)(h)
        h.close_connection = True  # closes without saying so (no "connection: close")

    with server(answer_then_drop) as rx:
        sender = HttpSender(timeout=2)
        try:
            first = sender(_request(rx.port, "1"))
            second = sender(_request(rx.port, "2"))
        finally:
            sender.close()
    assert (first.status_code, second.status_code) == (200, 200)
    assert [body for _port, _path, body in rx.seen] == ["1", "2"]
    assert rx.connections() == 2


@pytest.mark.parametrize(
    ("answer", "code", "error"),
    [
        (_answer(302, location="http://elsewhere.test/"), 302, "answered 302"),
        (_answer(500, b"oops"), 500, "answered 500"),
        (_answer(200, b"x" * (MAX_ANSWER + 10)), 200, None),  # read no further: not kept
        (_answer(200, b"ok", connection="close"), 200, None),
    ],
)
def test_answers_and_whether_the_connection_is_kept(
    answer: Handler, code: int, error: str | None
) -> None:
    with server(answer) as rx:
        sender = HttpSender(timeout=2)
        try:
            sent = [sender(_request(rx.port)) for _ in range(2)]
        finally:
            sender.close()
    assert [(s.status_code, s.error) for s in sent] == [(code, error)] * 2
    kept = code != 200  # the long answer and "connection: close" leave a new one each time
    assert rx.connections() == (1 if kept else 2)
    assert len(rx.seen) == 2  # a redirect is not followed


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt() -> None:
    def slow(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.6)
        _answer(200)(h)

    with server(slow) as rx:
        sender = HttpSender(timeout=0.2)
        try:
            sent = sender(_request(rx.port))
        finally:
            sender.close()
    assert (sent.status_code, sent.error) == (None, "timed out after 0.2 s")
    assert sent.latency_ms is not None and 150 <= sent.latency_ms < 600


def test_the_dispatcher_process_ends_when_its_parent_is_gone(tf: Tierflow) -> None:
    """``serve`` passes its pid: once the dispatcher's parent is another (serve was killed,
    the orphan re-parented), the loop ends by itself."""
    sender = HttpSender(timeout=1)
    d = Dispatcher(Webhooks(tf, b"k" * 32), send=sender, rng=random.Random(1))
    started = time.monotonic()
    try:
        webhooks_process.loop(d, poll=0.05, parent=os.getppid() + 1)  # not our parent
    finally:
        d.close()
        sender.close()
    assert time.monotonic() - started < 5


def test_serve_dispatches_from_a_process_of_its_own_and_metrics_count_both(
    tmp_path: Path,
) -> None:
    """``serve`` (1 worker, its defaults): the worker does not dispatch, the dispatcher process
    does, and ``/metrics`` sums the worker's requests and the dispatcher's deliveries; the
    dispatcher stops with ``serve``."""
    with (
        receiver() as rx,
        live_server(f"sqlite:///{tmp_path}/tf.db", tmp_path, workers=1, env=ENV) as srv,
    ):
        seeded = seed(srv.base, tickets=1)  # a ticket created and triaged: 2 events before
        r = httpx.post(
            f"{srv.base}/v1/accounts/acme/webhooks",
            json={"url": rx.url},
            headers=seeded.as_("admin"),
        )
        assert r.status_code == 201, r.text
        (tid,) = seeded.tickets
        r = httpx.post(
            f"{srv.base}/v1/accounts/acme/tickets/{tid}/triggers/request_info",
            json={"note": "which username?"},
            headers=seeded.as_("l1_agent"),
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while not rx.got and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded wait for the dispatcher process
        assert [json.loads(g.body)["type"] for g in rx.got] == ["ticket.transitioned"]
        metrics = httpx.get(f"{srv.base}/metrics", headers=seeded.as_("admin")).text
        assert 'tierflow_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics
        assert 'route="/v1/accounts/{acct}/webhooks",status="201"} 1.0' in metrics
        assert srv.proc is not None
        children = _children(srv.proc.pid)
        assert [c.split()[1:5] for c in children] == [[sys.executable, "-m", "api.cli", "webhooks"]]
        assert "webhooks dispatch --loop" in children[0]


def _children(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            out.append(f"{child} {cmd}")
    return out
