"""Webhooks: the delivery lag - from an event's unit of work to its receiver's 2xx - while the
API takes the trigger load of the API section, and the outbox's cost to a trigger.

* Lag: ``tierflow serve`` with its default settings (the dispatcher runs inside it), one
  subscription to a receiver in this process (a threaded HTTP/1.1 server on 127.0.0.1 that
  notes the wall-clock instant of each request and answers 204), the API section's load
  generator and load for ``api_seconds`` after a warm-up; then the dispatcher is given up to
  two minutes to catch up. Each event's lag is the receipt instant less the event's ``at``
  (the unit's instant, taken just before its commit: the figure includes the commit).
* Outbox cost: ``Tierflow.fire`` in-process with the outbox as it is, and with the unit's
  outbox statement removed (``Tierflow._send`` replaced by a no-op on that engine), the two
  alternated repeat by repeat on the same database and tickets (the machine's drift hits both).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import sqlalchemy as sa

from .api import ACCOUNT, _tierflow_env, load, read_states, setup_over_http
from .common import ADMIN_TOKEN, PYTHON, Config, Server, free_port, median, percentile, row
from .common import section as make_section
from .engine import CYCLE, _engine, ticket_pool

DISPATCH = [PYTHON, "-m", "api.cli"]
LOOP = ["webhooks", "dispatch", "--loop", "--poll", "0.2"]
WEBHOOK_ENV = {
    "TIERFLOW_WEBHOOKS_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
    "TIERFLOW_WEBHOOKS_KEY": "bench-webhooks-key-0123456789abcdefghij",
}


class _Receiver:
    """Notes (sequence, event instant, receipt instant) of every delivery; answers 204."""

    def __init__(self) -> None:
        self.got: list[tuple[int, float, float]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.time()
                event = json.loads(body)
                at = datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
                with receiver.lock:
                    receiver.got.append((event["sequence"], at, now))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _outbox_count(url: str, after: int) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM outbox_event WHERE sequence > :a"), {"a": after}
                ).scalar_one()
            )
    finally:
        eng.dispose()


def delivery_lag(cfg: Config, *, own_process: bool = False) -> dict[str, Any]:
    """The lag with the dispatcher inside ``serve`` (default), or - ``own_process`` - in a
    ``tierflow webhooks dispatch --loop --poll 0.2`` process beside a ``serve`` that has
    ``TIERFLOW_WEBHOOKS_DISPATCH=false``."""
    url = f"sqlite:///{cfg.workdir}/webhooks.db"
    for f in cfg.workdir.glob("webhooks.db*"):
        f.unlink()
    port = free_port()
    argv = [PYTHON, "-m", "api.cli", "--database-url", url, "serve", "--port", str(port)]
    env = {**_tierflow_env(url), **WEBHOOK_ENV}
    if own_process:
        env["TIERFLOW_WEBHOOKS_DISPATCH"] = "false"
    rx = _Receiver()
    dispatcher = None
    try:
        with Server(
            argv, port=port, env=env, log=cfg.workdir / "webhooks.log", health="/healthz"
        ) as srv:
            if own_process:
                dispatcher = subprocess.Popen(
                    [*DISPATCH, "--database-url", url, *LOOP],
                    env={**os.environ, **env},
                    stdout=subprocess.DEVNULL,
                    stderr=(cfg.workdir / "dispatch.log").open("w"),
                    cwd=cfg.workdir,
                )
            tokens, ids = setup_over_http(srv.base, cfg.api_tickets)
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            r = httpx.post(
                f"{srv.base}/v1/accounts/{ACCOUNT}/webhooks",
                json={"url": rx.url},
                headers=admin,
                timeout=30,
            )
            r.raise_for_status()
            before = _outbox_count(url, 0)
            started = time.time()
            result = load(
                cfg,
                srv.base,
                tokens,
                read_states(url, ids),
                seconds=cfg.api_seconds,
                warmup=cfg.api_warmup_seconds,
            )
            load_end = time.time()
            want = _outbox_count(url, before)
            deadline = time.monotonic() + 120
            while len(rx.got) < want and time.monotonic() < deadline:
                time.sleep(0.05)
            caught_up = time.time()
    finally:
        if dispatcher is not None:
            dispatcher.send_signal(signal.SIGINT)
            try:
                dispatcher.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dispatcher.kill()
                dispatcher.wait(timeout=10)
        rx.close()
    with rx.lock:
        got = list(rx.got)
    lags = sorted((recv - at) * 1000 for _seq, at, recv in got if at >= started)
    during = sorted((recv - at) * 1000 for _seq, at, recv in got if recv <= load_end)
    return {
        "events": want,
        "delivered": len(got),
        "p50_ms": percentile(lags, 50),
        "p99_ms": percentile(lags, 99),
        "max_ms": lags[-1] if lags else float("nan"),
        "during_p50_ms": percentile(during, 50),
        "during_p99_ms": percentile(during, 99),
        "catch_up_s": (max(r for *_x, r in got) - load_end) if got else float("nan"),
        "waited_s": caught_up - load_end,
        "rps": result["rps"],
        "errors": result["errors"],
        "in_order": [s for s, *_x in got] == sorted(s for s, *_x in got),
    }


def outbox_cost(cfg: Config) -> dict[str, Any]:
    tf = _engine(str(cfg.workdir / "outbox.db"))
    ids = ticket_pool(tf, cfg.engine_tickets)
    rounds = max(1, cfg.engine_fires // (2 * len(ids)))
    fires = rounds * 2 * len(ids)

    def timed() -> float:
        t0 = time.perf_counter()
        for _ in range(rounds):
            for trigger, role, note in CYCLE:
                for tid in ids:
                    tf.fire(
                        account=ACCOUNT,
                        ticket_id=tid,
                        trigger=trigger,
                        role=role,
                        note=note,
                        actor=role,
                    )
        return (time.perf_counter() - t0) / fires * 1e6

    with_us: list[float] = []
    without_us: list[float] = []
    timed()  # warm-up
    for _ in range(max(3, cfg.engine_repeats)):
        with_us.append(timed())
        tf._send = lambda *_a, **_k: None  # type: ignore[method-assign]
        without_us.append(timed())
        del tf._send
    tf.db.dispose()
    return {
        "with_us": median(with_us),
        "without_us": median(without_us),
        "pairs": [w / o - 1 for w, o in zip(with_us, without_us, strict=True)],
        "fires": fires,
    }


def run(cfg: Config) -> dict[str, Any]:
    lag = delivery_lag(cfg)
    apart = delivery_lag(cfg, own_process=True)
    cost = outbox_cost(cfg)
    extra = cost["with_us"] / cost["without_us"] - 1
    rows = [
        row(
            "SQLite, 1 worker: delivery lag p50 (commit → receiver's 2xx)",
            lag["p50_ms"],
            "ms",
            ratio=None,
            note=f"{lag['delivered']} of {lag['events']} events delivered"
            f"{', in sequence order' if lag['in_order'] else ', NOT in order'}",
        ),
        row(
            "SQLite, 1 worker: delivery lag p99",
            lag["p99_ms"],
            "ms",
            ratio=None,
            note=f"max {lag['max_ms']:,.0f} ms; of the deliveries made while the load ran: "
            f"p50 {lag['during_p50_ms']:,.0f} ms, p99 {lag['during_p99_ms']:,.0f} ms",
        ),
        row(
            "… the receiver's last delivery after the load ended",
            lag["catch_up_s"],
            "s",
            ratio=None,
        ),
        row(
            "… trigger POSTs/s meanwhile (dispatcher busy)",
            lag["rps"],
            "req/s",
            ratio=None,
            note=f"{lag['errors']} errors; compare the API section's SQLite row",
        ),
        row(
            "SQLite, dispatcher in its own process: delivery lag p50",
            apart["p50_ms"],
            "ms",
            ratio=None,
            note=f"p99 {apart['p99_ms']:,.0f} ms, max {apart['max_ms']:,.0f} ms; "
            f"{apart['delivered']} of {apart['events']} delivered"
            f"{', in sequence order' if apart['in_order'] else ', NOT in order'}; the last "
            f"{apart['catch_up_s']:.2f} s after the load; {apart['rps']:.0f} trigger POSTs/s",
        ),
        row(
            "Outbox cost to a fire (in-process)",
            extra * 100,
            "%",
            ratio=None,
            target="< 10 %",
            met=extra < 0.10,
            note=f"{cost['with_us']:.0f} µs with, {cost['without_us']:.0f} µs without; "
            "paired repeats: " + ", ".join(f"{p * 100:+.0f} %" for p in cost["pairs"]),
        ),
    ]
    notes = [
        "Lag: `tierflow serve` with default settings (one worker, SQLite, the dispatcher in "
        "it, woken by its commits) and one subscription to a receiver on 127.0.0.1 in the "
        "bench process (HTTP/1.1 keep-alive, answers 204); the API section's load for "
        f"{cfg.api_seconds:g} s after a {cfg.api_warmup_seconds:g} s warm-up; each event's "
        "lag is its receipt less its `at` (the unit's instant, just before its commit).",
        f"Outbox cost: `Tierflow.fire` round {cfg.engine_tickets} tickets, {cost['fires']} "
        "fires per repeat, with the outbox and with its statement removed, alternated.",
    ]
    return make_section("Webhooks and the outbox", rows, notes)
