"""The peer row: the trigger endpoint as a team would write it by hand with tierflow's stack -
FastAPI, a SQLModel ``Session`` per request, a ``transitions`` machine per ticket.

    BENCH_PEER_DB=sqlite:///path/peer.db  (or a postgresql+psycopg:// URL)
    uvicorn bench.peer_app:create_app --factory --workers N

Written as a competent team would, not as a strawman: SQLModel tables with indexes, a bearer
token looked up by its SHA-256 (primary key), the ticket loaded by primary key, the machine
deciding the transition, a compare-and-set on ``version`` (409 when another request won), an
event row in the same transaction, the answer as a response model. On SQLite the documented
SQLAlchemy recipe for concurrent writers: WAL, ``synchronous=NORMAL`` (tierflow's durability
setting), a busy timeout, ``BEGIN IMMEDIATE``. Plain ``def`` routes (FastAPI's thread pool), as
SQLModel's tutorial writes them. What it lacks next to tierflow: definitions, guards, roles
per trigger, SLA clocks, idempotency keys, the outbox, metrics, request logs.

Benchmark code only: nothing in ``api/`` or ``workflow/`` knows about it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel
from sqlmodel import Field, Session, SQLModel, create_engine
from transitions import Machine
from transitions.core import MachineError

STATES = ["l1_triage", "waiting_on_customer"]
TRANSITIONS = [
    {"trigger": "request_info", "source": "l1_triage", "dest": "waiting_on_customer"},
    {"trigger": "customer_replied", "source": "waiting_on_customer", "dest": "l1_triage"},
]
ROLES = {"request_info": "l1_agent", "customer_replied": "customer"}


class PeerToken(SQLModel, table=True):
    sha256: str = Field(primary_key=True)
    role: str
    name: str


class PeerTicket(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(index=True)
    subject: str
    state: str = Field(index=True)
    version: int = 1
    updated_at: datetime


class PeerEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="peerticket.id", index=True)
    seq: int
    trigger: str
    from_state: str
    to_state: str
    actor: str
    note: str | None = None
    at: datetime


class FireBody(BaseModel):
    note: str | None = None


class TicketOut(BaseModel):
    id: int
    state: str
    version: int


class Lifecycle:
    """The model ``transitions`` drives: one per request, seeded with the ticket's state."""

    def __init__(self, state: str) -> None:
        self.state = state


def make_engine(url: str) -> sa.Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def seed(url: str, account: str, n: int) -> tuple[dict[str, str], list[int]]:
    """The tables, a token per role, ``n`` tickets in ``l1_triage``: (tokens, ticket ids)."""
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    tokens = {role: secrets.token_urlsafe(24) for role in ("l1_agent", "customer")}
    now = datetime.now(UTC)
    with Session(engine) as s:
        for role, token in tokens.items():
            s.add(PeerToken(sha256=_sha(token), role=role, name=role))
        tickets = [
            PeerTicket(
                account=account, subject=f"Cannot log in #{i}", state="l1_triage", updated_at=now
            )
            for i in range(n)
        ]
        s.add_all(tickets)
        s.commit()
        ids = [int(t.id or 0) for t in tickets]
    engine.dispose()
    return tokens, ids


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


ENGINE: list[sa.Engine] = []  # the process's engine, made by create_app


def get_session() -> Any:
    with Session(ENGINE[0]) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def caller(session: SessionDep, authorization: Annotated[str, Header()] = "") -> PeerToken:
    token = session.get(PeerToken, _sha(authorization.removeprefix("Bearer ").strip()))
    if token is None:
        raise HTTPException(401, "unknown token")
    return token


CallerDep = Annotated[PeerToken, Depends(caller)]


def create_app() -> FastAPI:
    ENGINE[:] = [make_engine(os.environ["BENCH_PEER_DB"])]
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/accounts/{acct}/tickets/{ticket_id}/triggers/{trigger}")
    def fire(
        acct: str,
        ticket_id: int,
        trigger: str,
        session: SessionDep,
        who: CallerDep,
        body: FireBody | None = None,
    ) -> TicketOut:
        ticket = session.get(PeerTicket, ticket_id)
        if ticket is None or ticket.account != acct:
            raise HTTPException(404, "no such ticket")
        if ROLES.get(trigger) != who.role:
            raise HTTPException(403, f"{who.role} may not {trigger}")
        model = Lifecycle(ticket.state)
        Machine(
            model=model,
            states=STATES,
            transitions=TRANSITIONS,
            initial=ticket.state,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        before, version = ticket.state, ticket.version
        try:
            getattr(model, trigger)()
        except (AttributeError, MachineError) as exc:  # unknown trigger / not from this state
            raise HTTPException(409, f"{trigger} not possible from {before}") from exc
        now = datetime.now(UTC)
        done = session.execute(  # compare-and-set: only if nobody changed it since we read it
            sa.update(PeerTicket)
            .where(PeerTicket.id == ticket_id, PeerTicket.version == version)
            .values(state=model.state, version=version + 1, updated_at=now)
        )
        if done.rowcount != 1:
            session.rollback()
            raise HTTPException(409, "changed by another request; read it again")
        session.add(
            PeerEvent(
                ticket_id=ticket_id,
                seq=version + 1,
                trigger=trigger,
                from_state=before,
                to_state=model.state,
                actor=who.name,
                note=(body or FireBody()).note,
                at=now,
            )
        )
        session.commit()
        return TicketOut(id=ticket_id, state=model.state, version=version + 1)

    return app
