"""The API ceiling: a bare FastAPI endpoint doing the trigger's write through raw sqlite3 or
psycopg, on the same tables, with the same route shape as tierflow's.

    BENCH_CEILING_DB=sqlite:/path/file.db  (or  pg:<libpq conninfo>)
    uvicorn bench.ceiling_app:create_app --factory --workers N

Per request, one transaction: read the ticket's state and version, check the trigger against
the state (409 otherwise), compare-and-set UPDATE (state, previous state, timestamps, version),
INSERT the event, COMMIT; answer ``{"id", "state", "version"}``. No auth, no validation model,
no guards, no SLA: the cost of FastAPI plus the write, which tierflow's endpoint is held to.
SQLite: one connection per process behind a lock (a single writer, ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response

LOOP = {"request_info": "l1_triage", "customer_replied": "waiting_on_customer"}
EVENT_COLUMNS = (
    'ticket_id, account_id, seq, kind, "trigger", from_state, to_state, actor, role, note, '
    "data, changes, response, at"
)


class SqliteUnit:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.lock = threading.Lock()
        self.accounts: dict[str, int] = {
            slug: aid for aid, slug in self.db.execute("SELECT id, slug FROM account")
        }

    def fire(self, acct: str, tid: int, trigger: str, note: str | None) -> tuple[int, Any]:
        aid = self.accounts.get(acct)
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        db = self.db
        with self.lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                got = db.execute(
                    "SELECT state, previous_state, version FROM ticket "
                    "WHERE id = ? AND account_id = ?",
                    (tid, aid),
                ).fetchone()
                if got is None:
                    db.execute("ROLLBACK")
                    return 404, {"detail": "no such ticket"}
                state, previous, version = got
                if LOOP.get(trigger) != state:
                    db.execute("ROLLBACK")
                    return 409, {"detail": f"{trigger} not possible from {state}"}
                dest = "waiting_on_customer" if trigger == "request_info" else previous
                cur = db.execute(
                    "UPDATE ticket SET state = ?, previous_state = ?, state_entered_at = ?, "
                    "updated_at = ?, version = ? WHERE id = ? AND version = ?",
                    (dest, state, now, now, version + 1, tid, version),
                )
                if cur.rowcount != 1:
                    db.execute("ROLLBACK")
                    return 409, {"detail": "conflict"}
                db.execute(
                    f"INSERT INTO ticket_event ({EVENT_COLUMNS}) "
                    "VALUES (?, ?, ?, 'transition', ?, ?, ?, 'bench', 'l1_agent', ?, '{}', '{}', "
                    "?, ?)",
                    (tid, aid, version + 1, trigger, state, dest, note, int(note is not None), now),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return 200, {"id": tid, "state": dest, "version": version + 1}


class PostgresUnit:
    def __init__(self, conninfo: str) -> None:
        import psycopg

        self.db = psycopg.connect(conninfo)
        self.lock = threading.Lock()
        with self.db.transaction():
            rows = self.db.execute("SELECT id, slug FROM account").fetchall()
        self.accounts = {slug: aid for aid, slug in rows}

    def fire(self, acct: str, tid: int, trigger: str, note: str | None) -> tuple[int, Any]:
        aid = self.accounts.get(acct)
        now = datetime.now(UTC)
        db = self.db
        with self.lock, db.transaction():
            got = db.execute(
                "SELECT state, previous_state, version FROM ticket WHERE id = %s AND "
                "account_id = %s",
                (tid, aid),
            ).fetchone()
            if got is None:
                return 404, {"detail": "no such ticket"}
            state, previous, version = got
            if LOOP.get(trigger) != state:
                return 409, {"detail": f"{trigger} not possible from {state}"}
            dest = "waiting_on_customer" if trigger == "request_info" else previous
            cur = db.execute(
                "UPDATE ticket SET state = %s, previous_state = %s, state_entered_at = %s, "
                "updated_at = %s, version = %s WHERE id = %s AND version = %s",
                (dest, state, now, now, version + 1, tid, version),
            )
            if cur.rowcount != 1:
                return 409, {"detail": "conflict"}
            db.execute(
                f"INSERT INTO ticket_event ({EVENT_COLUMNS}) VALUES (%s, %s, %s, 'transition', "
                "%s, %s, %s, 'bench', 'l1_agent', %s, '{}', '{}', %s, %s)",
                (tid, aid, version + 1, trigger, state, dest, note, note is not None, now),
            )
        return 200, {"id": tid, "state": dest, "version": version + 1}


def create_app() -> FastAPI:
    target = os.environ["BENCH_CEILING_DB"]
    kind, _, where = target.partition(":")
    units: list[SqliteUnit | PostgresUnit] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        units.append(SqliteUnit(where) if kind == "sqlite" else PostgresUnit(where))
        yield
        units[0].db.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/accounts/{acct}/tickets/{ticket_id}/triggers/{trigger}")
    async def fire(acct: str, ticket_id: int, trigger: str, request: Request) -> Response:
        raw = await request.body()
        note = json.loads(raw).get("note") if raw else None
        status, answer = units[0].fire(acct, ticket_id, trigger, note)
        return Response(
            json.dumps(answer, separators=(",", ":")),
            status_code=status,
            media_type="application/json",
        )

    return app
