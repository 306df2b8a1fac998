"""Webhooks: the delivery lag - from an event's unit of work to its receiver's 2xx - while the
API takes the trigger load of the API section, and the outbox's cost to a trigger.

* Lag: ``tierflow serve`` with its default settings - its dispatcher is a process of its own
  beside the workers (``api/webhooks_process.py``) - one subscription to a receiver in this
  process (a threaded HTTP/1.1 server on 127.0.0.1 that notes the wall-clock instant of each
  request and answers 204), the API section's load generator and load for ``api_seconds``
  after a warm-up; then the dispatcher is given up to two minutes to catch up. Each event's lag
  is the receipt instant less the event's ``at`` (the unit's instant, taken just before its
  commit: the figure includes the commit). SQLite with 1 worker, PostgreSQL with 2 (as the API
  section runs them).
* Outbox cost: ``Tierflow.fire`` in-process with the outbox as it is, and with no outbox work
  at all: ``Tierflow._send`` replaced on that engine by the plain insert of the unit's history
  rows - no sequence taken, none stored, no other row; the history's account index (which is
  (account_id, sequence)) then holds the row under a NULL sequence, as the history's plain
  account index would. The two are alternated repeat by repeat (ABBA) on the same database and
  tickets (the machine's drift hits both).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import sqlalchemy as sa

from workflow import outbox

from .api import ACCOUNT, _tierflow_env, load, read_states, setup_over_http
from .common import (
    ADMIN_TOKEN,
    PYTHON,
    Config,
    Server,
    free_port,
    median,
    percentile,
    pg_available,
    pg_database,
    row,
)
from .common import section as make_section
from .engine import _engine, fire_rounds, ticket_pool

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
                    sa.text("SELECT count(*) FROM ticket_event WHERE sequence > :a"), {"a": after}
                ).scalar_one()
            )
    finally:
        eng.dispose()


def delivery_lag(cfg: Config, url: str, *, workers: int = 1, tag: str = "sqlite") -> dict[str, Any]:
    """The lag under load with ``tierflow serve --workers N`` as it is by default."""
    port = free_port()
    argv = [PYTHON, "-m", "api.cli", "--database-url", url, "serve", "--port", str(port)]
    argv += ["--workers", str(workers)]
    env = {**_tierflow_env(url), **WEBHOOK_ENV}
    rx = _Receiver()
    try:
        with Server(
            argv, port=port, env=env, log=cfg.workdir / f"webhooks_{tag}.log", health="/healthz"
        ) as srv:
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
            read_states(url, ids)  # the requests still in flight are done
            want = _outbox_count(url, before)
            deadline = time.monotonic() + 120
            while len(rx.got) < want and time.monotonic() < deadline:
                time.sleep(0.05)
            caught_up = time.time()
    finally:
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


def sqlite_lag(cfg: Config) -> dict[str, Any]:
    url = f"sqlite:///{cfg.workdir}/webhooks.db"
    for f in cfg.workdir.glob("webhooks.db*"):
        f.unlink()
    return delivery_lag(cfg, url)


def pg_lag(cfg: Config) -> dict[str, Any]:
    with pg_database("webhooks") as (url, _info):
        return delivery_lag(cfg, url, workers=2, tag="pg")


def outbox_cost(cfg: Config) -> dict[str, Any]:
    """µs per fire with the outbox and without it (the history rows written unnumbered), alternated
    in ABBA order (neither arm always runs first), wall and CPU time of this process."""
    tf = _engine(str(cfg.workdir / "outbox.db"))
    ids = ticket_pool(tf, cfg.engine_tickets)
    rounds = max(1, cfg.engine_fires // (2 * len(ids)))
    fires = rounds * 2 * len(ids)
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}

    def history_only(
        conn: Any, account_id: int, ticket_id: int, version: int, events: Any, *rest: Any
    ) -> None:
        rows = tf._event_rows(ticket_id, account_id, events, version - len(events), *rest)
        outbox.INSERT.execute_many(conn, rows)  # unnumbered: the history, no outgoing event

    def timed(with_outbox: bool) -> None:
        if not with_outbox:
            tf._send = history_only  # type: ignore[method-assign,assignment]
        t0, c0 = time.perf_counter(), time.process_time()
        fire_rounds(tf, ids, rounds)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if not with_outbox:
            del tf._send
        times[with_outbox].append((wall / fires * 1e6, cpu / fires * 1e6))

    fire_rounds(tf, ids, rounds)  # warm-up
    for i in range(max(3, cfg.engine_repeats)):
        for with_outbox in (True, False) if i % 2 == 0 else (False, True):
            timed(with_outbox)
    tf.db.dispose()
    with_, without = times[True], times[False]
    return {
        "with_us": median([w for w, _c in with_]),
        "without_us": median([w for w, _c in without]),
        "with_cpu_us": median([c for _w, c in with_]),
        "without_cpu_us": median([c for _w, c in without]),
        "pairs": [a[0] / b[0] - 1 for a, b in zip(with_, without, strict=True)],
        "fires": fires,
    }


def _lag_rows(name: str, lag: dict[str, Any]) -> list[dict[str, Any]]:
    order = ", in sequence order" if lag["in_order"] else ", NOT in order"
    return [
        row(
            f"{name}: delivery lag p50 (commit → receiver's 2xx)",
            lag["p50_ms"],
            "ms",
            ratio=None,
            note=f"{lag['delivered']} of {lag['events']} events delivered{order}; "
            f"{lag['rps']:.0f} trigger POSTs/s meanwhile, {lag['errors']} errors",
        ),
        row(
            f"{name}: delivery lag p99",
            lag["p99_ms"],
            "ms",
            ratio=None,
            note=f"max {lag['max_ms']:,.0f} ms; the receiver's last delivery "
            f"{lag['catch_up_s']:.2f} s after the load ended",
        ),
    ]


def run(cfg: Config) -> dict[str, Any]:
    rows = _lag_rows("SQLite, 1 worker", sqlite_lag(cfg))
    why = pg_available()
    if why is None:
        rows += _lag_rows("PostgreSQL, 2 workers", pg_lag(cfg))
    else:
        rows.append(row("PostgreSQL, 2 workers: delivery lag", "not measured", note=why))
    cost = outbox_cost(cfg)
    extra = cost["with_us"] / cost["without_us"] - 1
    cpu = cost["with_cpu_us"] / cost["without_cpu_us"] - 1
    rows.append(
        row(
            "Outbox cost to a fire (in-process, wall time)",
            extra * 100,
            "%",
            ratio=None,
            target="< 10 %",
            met=extra < 0.10,
            note=f"{cost['with_us']:.0f} µs with, {cost['without_us']:.0f} µs without; "
            "paired repeats: " + ", ".join(f"{p * 100:+.0f} %" for p in cost["pairs"]),
        )
    )
    rows.append(
        row(
            "… in CPU time of the process",
            cpu * 100,
            "%",
            ratio=None,
            note=f"{cost['with_cpu_us']:.0f} µs with, {cost['without_cpu_us']:.0f} µs without "
            "(what other work on the machine takes away from the wall time is not in it)",
        )
    )
    notes = [
        "Lag: `tierflow serve` with default settings (SQLite: one worker; PostgreSQL: two; "
        "the dispatcher a process of its own beside them) and one subscription to a receiver "
        "on 127.0.0.1 in the bench process (HTTP/1.1 keep-alive, answers 204); the API "
        f"section's load for {cfg.api_seconds:g} s after a {cfg.api_warmup_seconds:g} s "
        "warm-up; each event's lag is its receipt less its `at` (the unit's instant, just "
        "before its commit).",
        f"Outbox cost: `Tierflow.fire` round {cfg.engine_tickets} tickets, {cost['fires']} "
        "fires per repeat, with the outbox (the unit's history rows numbered as the account's "
        "outgoing events) and without any outbox work (the same rows written unnumbered: no "
        "sequence taken or stored, no other row), alternated in ABBA order; medians.",
    ]
    return make_section("Webhooks and the outbox", rows, notes)
