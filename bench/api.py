"""API: ``POST …/tickets/{id}/triggers/{t}`` requests per second and p50/p99/max latency at
32 connections from a separate load-generator process, against a bare FastAPI endpoint doing
the same write (``bench/ceiling_app.py``, the ceiling) and the same endpoint written by hand
with tierflow's stack (``bench/peer_app.py``, the peer) in the same run: 1 worker on SQLite, 2
on PostgreSQL. ``tierflow serve`` runs as shipped (background jobs, request log, webhooks
dispatcher): only the admin token and the database URL are set.

Servers are real subprocesses on free loopback ports (``tierflow serve``, and uvicorn for the
ceiling and the peer), set up over HTTP (account, tokens, tickets), stopped by PID afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from workflow import Tierflow

from .common import (
    ADMIN_TOKEN,
    PYTHON,
    ROOT,
    Config,
    Server,
    median,
    pg_available,
    pg_database,
    row,
    section,
)
from .engine import ticket_pool

ACCOUNT = "bench"
NOTE = "which username do you use?"
PREFIX = f"/v1/accounts/{ACCOUNT}/tickets/"
LUA = Path(__file__).with_name("fire.lua")


# --- servers --------------------------------------------------------------------------------
def _tierflow_env(url: str) -> dict[str, str]:
    return {
        "TIERFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
        "TIERFLOW_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
    }


def start_tierflow(cfg: Config, url: str, workers: int, tag: str, port: int) -> Server:
    argv = [PYTHON, "-m", "api.cli", "--database-url", url, "serve", "--port", str(port)]
    argv += ["--workers", str(workers)]
    env = _tierflow_env(url)
    return Server(argv, port=port, env=env, log=cfg.workdir / f"{tag}.log", health="/healthz")


def _uvicorn(
    cfg: Config, app: str, env: dict[str, str], workers: int, tag: str, port: int
) -> Server:
    argv = [PYTHON, "-m", "uvicorn", app, "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    argv += ["--no-access-log", "--log-level", "info"]
    env = {**env, "PYTHONPATH": str(ROOT)}
    return Server(argv, port=port, env=env, log=cfg.workdir / f"{tag}.log", health="/healthz")


def start_ceiling(cfg: Config, target: str, workers: int, tag: str, port: int) -> Server:
    env = {"BENCH_CEILING_DB": target}
    return _uvicorn(cfg, "bench.ceiling_app:create_app", env, workers, tag, port)


def start_peer(cfg: Config, url: str, workers: int, tag: str, port: int) -> Server:
    """The hand-written peer (``bench/peer_app.py``), served like the ceiling."""
    return _uvicorn(cfg, "bench.peer_app:create_app", {"BENCH_PEER_DB": url}, workers, tag, port)


def start_floor(cfg: Config, url: str, tag: str, port: int) -> Server:
    """tierflow's app with the engine's answers cached (``bench/floor_app.py``), 1 worker."""
    Tierflow(url).db.dispose()  # the schema (``serve`` would create it; uvicorn does not)
    argv = [PYTHON, "-m", "uvicorn", "bench.floor_app:create_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    env = _tierflow_env(url)
    return Server(argv, port=port, env=env, log=cfg.workdir / f"{tag}.log", health="/healthz")


def setup_over_http(base: str, n: int) -> tuple[dict[str, str], list[int]]:
    """Account ``bench``, an l1_agent and a customer token, ``n`` tickets in ``l1_triage`` that
    went round the loop once - all through the API."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base, timeout=30) as c:

        def post(path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
            r = c.post(path, json=body, headers=headers)
            if r.status_code >= 300:
                raise RuntimeError(f"setup: POST {path} -> {r.status_code} {r.text}")
            answer: dict[str, Any] = r.json()
            return answer

        post("/v1/accounts", {"slug": ACCOUNT, "name": "Bench"}, admin)
        tokens = {
            role: post(f"/v1/accounts/{ACCOUNT}/tokens", {"role": role, "name": role}, admin)[
                "token"
            ]
            for role in ("l1_agent", "customer")
        }
        agent = {"Authorization": f"Bearer {tokens['l1_agent']}"}
        customer = {"Authorization": f"Bearer {tokens['customer']}"}
        ids = []
        for i in range(n):
            t = post(
                f"/v1/accounts/{ACCOUNT}/tickets",
                {
                    "kind": "technical",
                    "category": "login_password",
                    "subject": f"Cannot log in #{i}",
                    "channel": "chat",
                    "complexity": "low",
                    "urgency": "high",
                },
                customer,  # a customer acts only on the tickets they requested
            )
            ids.append(int(t["id"]))
            post(f"{PREFIX}{t['id']}/triggers/triage", {}, agent)
        for tid in ids:
            post(f"{PREFIX}{tid}/triggers/request_info", {"note": NOTE}, agent)
        for tid in ids:
            post(f"{PREFIX}{tid}/triggers/customer_replied", {}, customer)
    return tokens, ids


def setup_in_process(url: str, n: int) -> list[int]:
    """The ceiling's database: the same schema and tickets, made by the engine directly."""
    tf = Tierflow(url)
    tf.create_account(slug=ACCOUNT, name="Bench")
    ids = ticket_pool(tf, n, ACCOUNT)
    tf.db.dispose()
    return ids


def read_states(url: str, ids: list[int], table: str = "ticket") -> list[tuple[int, str]]:
    """Each ticket's state, once the server has finished what the last load left in flight
    (the versions stop moving), so the next load starts every ticket with a valid trigger."""
    q = sa.text(f"SELECT id, state, version FROM {table} WHERE id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    eng = sa.create_engine(url)
    try:
        last: dict[int, tuple[str, int]] = {}
        deadline = time.monotonic() + 20
        while True:
            with eng.connect() as conn:
                got = {i: (s, v) for i, s, v in conn.execute(q, {"ids": ids}).all()}
            if got == last or time.monotonic() > deadline:
                break
            last = got
            time.sleep(0.3)
    finally:
        eng.dispose()
    return [(i, got[i][0]) for i in ids]


# --- load ----------------------------------------------------------------------------------
def loadgen_kind(cfg: Config) -> str:
    if cfg.loadgen in ("wrk", "python"):
        return cfg.loadgen
    return "wrk" if shutil.which("wrk") else "python"


def load(
    cfg: Config,
    base: str,
    tokens: dict[str, str],
    tickets: list[tuple[int, str]],
    *,
    seconds: float,
    warmup: float = 0.0,
    max_requests: int = 0,
    kind: str | None = None,
) -> dict[str, Any]:
    """One load run from a separate process: ``warmup`` seconds unmeasured, then ``seconds``
    measured on the same connections (or ``max_requests`` in all); the ``BENCH {...}`` line."""
    kind = kind or loadgen_kind(cfg)
    port = int(base.rsplit(":", 1)[1])
    if kind == "wrk" and not max_requests:
        conf = cfg.workdir / "wrk_conf.lua"
        items = ", ".join(f"{{{i}, {json.dumps(s)}}}" for i, s in tickets)
        conf.write_text(
            "return {"
            f"prefix = {json.dumps(PREFIX)}, agent = {json.dumps(tokens['l1_agent'])}, "
            f"customer = {json.dumps(tokens['customer'])}, "
            f"note = {json.dumps(json.dumps({'note': NOTE}))}, threads = 2, warmup = {warmup}, "
            f"tickets = {{{items}}}"
            "}\n"
        )
        argv = ["wrk", "-t2", f"-c{cfg.api_connections}", f"-d{max(1, round(seconds + warmup))}s"]
        argv += ["--timeout", "10s", "-s", str(LUA), base, "--", str(conf)]
        timeout = seconds + warmup + 60
    else:
        conf = cfg.workdir / "loadgen.json"
        conf.write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "prefix": PREFIX,
                    "agent": tokens["l1_agent"],
                    "customer": tokens["customer"],
                    "note": json.dumps({"note": NOTE}),
                    "tickets": tickets,
                    "connections": cfg.api_connections,
                    "duration": seconds,
                    "warmup": warmup,
                    "max_requests": max_requests,
                }
            )
        )
        argv = [PYTHON, "-m", "bench.loadgen", str(conf)]
        timeout = seconds + warmup + 600
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            result: dict[str, Any] = json.loads(re.sub(r"-?\bnan\b", "NaN", line[6:]))
            result["rps"] = result["requests"] / result["duration_s"]
            result["errors"] = (
                result["status_errors"] + result["socket_errors"] + result["timeouts"]
            )
            result["loadgen"] = kind
            return result
    raise RuntimeError(f"{argv[0]} gave no result ({done.returncode}):\n{done.stderr[-2000:]}")


def measure(
    cfg: Config,
    server: Server,
    url: str,
    tokens: dict[str, str],
    ids: list[int],
    table: str = "ticket",
) -> dict[str, Any]:
    """``api_repeats`` runs (each: warm-up, then the measured window); medians, errors summed,
    the largest latency of all."""
    runs = [
        load(
            cfg,
            server.base,
            tokens,
            read_states(url, ids, table),
            seconds=cfg.api_seconds,
            warmup=cfg.api_warmup_seconds,
        )
        for _ in range(cfg.api_repeats)
    ]
    return {
        "rps": median([r["rps"] for r in runs]),
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "max_ms": max(r.get("max_ms", float("nan")) for r in runs),
        "whole_p99_ms": median([r.get("whole_p99_ms", float("nan")) for r in runs]),
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["whole_requests"] for r in runs),
        "runs": runs,
    }


# --- the two set-ups -------------------------------------------------------------------------
def _pair(cfg: Config, backend: str, workers: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tierflow, ceiling) measurements on one backend."""
    from .common import free_port

    n = cfg.api_tickets
    if backend == "sqlite":
        ours_url = f"sqlite:///{cfg.workdir}/api_tierflow.db"
        ceil_url = f"sqlite:///{cfg.workdir}/api_ceiling.db"
        for f in cfg.workdir.glob("api_*.db*"):
            f.unlink()
        ceil_ids = setup_in_process(ceil_url, n)
        with start_tierflow(cfg, ours_url, workers, f"api_{backend}", free_port()) as srv:
            tokens, ids = setup_over_http(srv.base, n)
            ours = measure(cfg, srv, ours_url, tokens, ids)
        with start_ceiling(
            cfg, f"sqlite:{cfg.workdir}/api_ceiling.db", workers, f"ceil_{backend}", free_port()
        ) as srv:
            ceiling = measure(cfg, srv, ceil_url, {"l1_agent": "-", "customer": "-"}, ceil_ids)
        peer_url = f"sqlite:///{cfg.workdir}/api_peer.db"
        ours["peer"] = _peer(cfg, peer_url, workers, backend)
        floor_url = f"sqlite:///{cfg.workdir}/api_floor.db"
        with start_floor(cfg, floor_url, "floor_sqlite", free_port()) as srv:
            tokens, ids = setup_over_http(srv.base, n)
            ours["floor"] = measure(cfg, srv, floor_url, tokens, ids)
        return ours, ceiling
    with pg_database("api") as (ours_url, _), pg_database("ceil") as (ceil_url, ceil_info):
        ceil_ids = setup_in_process(ceil_url, n)
        with start_tierflow(cfg, ours_url, workers, f"api_{backend}", free_port()) as srv:
            tokens, ids = setup_over_http(srv.base, n)
            ours = measure(cfg, srv, ours_url, tokens, ids)
        with start_ceiling(cfg, f"pg:{ceil_info}", workers, f"ceil_{backend}", free_port()) as srv:
            ceiling = measure(cfg, srv, ceil_url, {"l1_agent": "-", "customer": "-"}, ceil_ids)
    with pg_database("peer") as (peer_url, _):
        ours["peer"] = _peer(cfg, peer_url, workers, backend)
    return ours, ceiling


def _peer(cfg: Config, url: str, workers: int, backend: str) -> dict[str, Any]:
    from . import peer_app
    from .common import free_port

    tokens, ids = peer_app.seed(url, ACCOUNT, cfg.api_tickets)
    with start_peer(cfg, url, workers, f"peer_{backend}", free_port()) as srv:
        return measure(cfg, srv, url, tokens, ids, table="peerticket")


def _whole(ours: dict[str, Any], ceil: dict[str, Any]) -> str:
    if ours["whole_p99_ms"] != ours["whole_p99_ms"]:  # NaN: the Python generator
        return ""
    return (
        f"whole run incl. warm-up (wrk's own figure): {ours['whole_p99_ms']:.1f} ms, "
        f"ceiling {ceil['whole_p99_ms']:.1f} ms"
    )


def _rows(label: str, ours: dict[str, Any], ceil: dict[str, Any], sqlite: bool) -> list:
    ratio = ours["rps"] / ceil["rps"]
    peer = ours["peer"]
    out = [
        row(
            f"{label}: trigger POSTs/s",
            ours["rps"],
            "req/s",
            ceiling=ceil["rps"],
            target="≥ 50 % of ceiling",
            met=ratio >= 0.5,
        ),
        row(f"{label}: p50 latency", ours["p50_ms"], "ms", ceiling=ceil["p50_ms"], ratio=None),
        row(
            f"{label}: p99 latency",
            ours["p99_ms"],
            "ms",
            ceiling=ceil["p99_ms"],
            ratio=None,
            target="≤ 30 ms" if sqlite else "",
            met=(ours["p99_ms"] <= 30) if sqlite else None,
            note=_whole(ours, ceil),
        ),
        row(
            f"{label}: max latency",
            ours["max_ms"],
            "ms",
            ceiling=ceil["max_ms"],
            ratio=None,
            target="≤ 150 ms" if sqlite else "",
            met=(ours["max_ms"] <= 150) if sqlite else None,
            note="the slowest measured request of all runs",
        ),
        row(
            f"{label}: errors (non-2xx, socket, timeouts)",
            ours["errors"],
            "",
            ceiling=ceil["errors"],
            ratio=None,
            target="0",
            met=ours["errors"] == 0,
            note=f"over all {ours['requests']} requests, warm-ups included",
        ),
        row(
            f"{label}: peer (FastAPI + SQLModel session + `transitions`, by hand)",
            peer["rps"],
            "req/s",
            ceiling=ceil["rps"],
            note=f"tierflow is {ours['rps'] / peer['rps']:.2f} times the peer; peer p50 "
            f"{peer['p50_ms']:.1f} ms, p99 {peer['p99_ms']:.1f} ms, max {peer['max_ms']:.0f} ms, "
            f"{peer['errors']} errors (`bench/peer_app.py`)",
        ),
    ]
    return out


def run(cfg: Config, *, sqlite: bool = True, postgresql: bool = True) -> dict[str, Any]:
    """The section: SQLite (1 worker) unless ``sqlite`` is False (``--only api-pg``), then
    PostgreSQL (2 workers) unless ``postgresql`` is False (``--only api-sqlite``)."""
    kind = loadgen_kind(cfg)
    rows: list[dict[str, Any]] = []
    notes = [
        f"Load generator: {'wrk (Debian package), 2 threads, `bench/fire.lua`' if kind == 'wrk' else 'bench/loadgen.py (asyncio, uvloop)'}"  # noqa: E501
        f", {cfg.api_connections} keep-alive connections, in its own process on loopback; "
        f"{cfg.api_tickets} tickets (2 per connection, so no single hot row), each ticket in "
        "flight at most once (the answer's state picks its next trigger), so a 409 would be a "
        "real error. Requests: `request_info` with a note (l1_agent token) and "
        "`customer_replied` (customer token), with `Authorization` and a JSON body.",
        f"Each figure: median of {cfg.api_repeats} runs of {cfg.api_seconds:g} s after a "
        f"{cfg.api_warmup_seconds:g} s warm-up; errors summed over all of them.",
        "Ceiling: `bench/ceiling_app.py`, a bare FastAPI `async def` route of the same shape "
        "doing read + compare-and-set UPDATE + event INSERT + COMMIT through raw sqlite3 (one "
        "connection, a lock, BEGIN IMMEDIATE, WAL, synchronous=NORMAL) or psycopg (one "
        "connection per worker); no auth, guards or SLA; served by uvicorn with the same worker "
        "count.",
        "tierflow: `tierflow serve` as shipped - background jobs (SLA scan every 60 s, outbox "
        "pruning), one JSON request log line per request (to the server's log file), the "
        "webhooks dispatcher (no subscriptions) - only the admin token and database URL set.",
        "Peer: `bench/peer_app.py`, the same endpoint as a team would write it by hand with "
        "the same stack: FastAPI, a SQLModel `Session` per request, a `transitions` machine "
        "per ticket, a bearer token looked up per request, compare-and-set on `version`, an "
        "event row, on SQLite WAL + synchronous=NORMAL + `BEGIN IMMEDIATE` (the documented "
        "recipe for concurrent writers); the same worker count; no guards, SLA, idempotency, "
        "outbox or logs.",
    ]
    runs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    if sqlite:
        ours, ceil = _pair(cfg, "sqlite", 1)
        rows += _rows("SQLite, 1 worker", ours, ceil, sqlite=True)
        floor = ours["floor"]
        rows.append(
            row(
                "… diagnostic: the same requests with the engine's answer cached",
                floor["rps"],
                "req/s",
                ceiling=ceil["rps"],
                note=f"p50 {floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} ms, "
                f"{floor['errors']} errors; tierflow's HTTP layer alone (`bench/floor_app.py`)",
            )
        )
        notes.append(
            "Diagnostic row: `bench/floor_app.py` serves tierflow's own app with `Tierflow.fire` "
            "answering each (ticket, trigger) from the first real answer - every route, token, "
            "validation, metrics and serialisation step, no unit of work. It bounds what any "
            "engine could reach behind this HTTP layer; it is not the layer's share of a real "
            "request (alone, its code stays hot in the CPU caches; beside a unit of work both run "
            "slower than they do alone)."
        )
        runs["sqlite"] = (ours, ceil)
    why = pg_available() if postgresql else "not selected (`--only api-sqlite`)"
    if why is None:
        ours, ceil = _pair(cfg, "postgresql", 2)
        rows += _rows("PostgreSQL, 2 workers", ours, ceil, sqlite=False)
        runs["postgresql"] = (ours, ceil)
        notes.append(
            "PostgreSQL: a fresh database per server (created and dropped by the run), "
            "synchronous_commit as configured on the server."
        )
    else:
        rows.append(row("PostgreSQL, 2 workers", "not measured", note=why))
    for backend, (o, c) in runs.items():
        notes.append(
            f"{backend} runs (req/s): tierflow "
            + ", ".join(f"{r['rps']:.0f}" for r in o["runs"])
            + "; ceiling "
            + ", ".join(f"{r['rps']:.0f}" for r in c["runs"])
            + "; peer "
            + ", ".join(f"{r['rps']:.0f}" for r in o["peer"]["runs"])
        )
    return section("API (HTTP, 32 connections)", rows, notes)


def run_sqlite(cfg: Config) -> dict[str, Any]:
    """The section's SQLite rows only (tierflow, ceiling, peer, HTTP layer alone): half the
    time of the whole section."""
    return run(cfg, postgresql=False)


def run_pg(cfg: Config) -> dict[str, Any]:
    """The section's PostgreSQL rows only (tierflow, ceiling, peer; 2 workers), for A/B runs
    of the PostgreSQL target."""
    return run(cfg, sqlite=False)
