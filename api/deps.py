"""FastAPI dependencies: the engine, the caller, the account scope, the ticket loader.

Account scoping happens here, once: a token of another account gets the same 404 as an
unknown account, never a 403 and never data. So does what a caller may see within the account
(:mod:`workflow.access`): ``Scope.engine`` is the engine bound to the caller's viewer - every
engine method that takes ``viewer`` gets it - so a route cannot forget it, and a customer gets
the same 404 for another customer's ticket.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool

from workflow import NotFound, TicketView, Tierflow
from workflow.access import Viewer

from .problems import Unauthorized
from .tokens import Principal, TokenStore


async def get_engine(request: Request) -> Tierflow:
    engine: Tierflow = request.app.state.engine
    return engine


async def get_tokens(request: Request) -> TokenStore:
    tokens: TokenStore = request.app.state.tokens
    return tokens


EngineDep = Annotated[Tierflow, Depends(get_engine)]
TokensDep = Annotated[TokenStore, Depends(get_tokens)]


def _principal(tokens: TokenStore, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    principal = tokens.resolve(token.strip())
    if principal is None:
        raise Unauthorized("unknown, expired or revoked token")
    return principal


Authorization = Annotated[str | None, Header(include_in_schema=False)]


def get_principal(request: Request, authorization: Authorization = None) -> Principal:
    return _principal(request.app.state.tokens, authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


VIEWED = frozenset(
    name
    for name, member in inspect.getmembers(Tierflow, callable)
    if not name.startswith("__") and "viewer" in inspect.signature(member).parameters
)
"""The engine's methods that filter by viewer (every read of tickets, every unit of work)."""


class ViewedEngine:
    """The engine as one caller sees it: each method in :data:`VIEWED` gets ``viewer``."""

    __slots__ = ("_engine", "_viewer")

    def __init__(self, engine: Tierflow, viewer: Viewer) -> None:
        self._engine = engine
        self._viewer = viewer

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if name in VIEWED:
            return functools.partial(attr, viewer=self._viewer)
        return attr


@dataclass(frozen=True, slots=True)
class Scope:
    """The account a request acts on, who acts, and the engine to act with (as they see it)."""

    account: str
    principal: Principal
    engine: Tierflow

    @property
    def role(self) -> str:
        return self.principal.role

    @property
    def actor(self) -> str:
        return self.principal.name

    @property
    def viewer(self) -> Viewer:
        return self.principal.viewer

    @property
    def caller(self) -> str:
        """Who calls, for idempotency fingerprints: the role and the person (a key another
        person replays is another request, never their borrowed answer)."""
        return f"{self.principal.role}:{self.principal.user_id}"


async def get_scope(request: Request, acct: str) -> Scope:
    """Resolved in one step (it sits on the hot path of every ticket route). The token is read
    off the headers directly: it is not a documented parameter, and FastAPI's header parameter
    machinery costs more than the lookup. A token the store has cached is a dictionary lookup,
    done on the event loop (a hop to the thread pool costs more than it: measured in
    bench/FINDINGS.md); anything that may read the database goes to the thread pool. A busy
    token's entry is renewed by one background read before it expires (``refresh_due``), so
    its requests do not all go to the database together every ``CACHE_SECONDS``."""
    authorization = request.headers.get("authorization")
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    tokens: TokenStore = request.app.state.tokens
    known = tokens.cached(token) if scheme.lower() == "bearer" else None
    if known is not None and not known.is_admin:
        if tokens.refresh_due(token):  # renewed by one read, before the entry expires
            asyncio.get_running_loop().run_in_executor(None, tokens.refresh, token)
        return _scope(request, acct, known)
    return await run_in_threadpool(_resolved_scope, request, acct, authorization)


def _resolved_scope(request: Request, acct: str, authorization: str | None) -> Scope:
    return _scope(request, acct, _principal(request.app.state.tokens, authorization))


def _scope(request: Request, acct: str, principal: Principal) -> Scope:
    engine: Tierflow = request.app.state.engine
    if principal.is_admin:
        engine.account_id(acct)  # 404 for an unknown account
    elif principal.account != acct:
        raise NotFound("account", acct)
    return Scope(acct, principal, cast(Tierflow, ViewedEngine(engine, principal.viewer)))


ScopeDep = Annotated[Scope, Depends(get_scope)]


def load_ticket(ticket_id: int, scope: ScopeDep) -> TicketView:
    return scope.engine.get_ticket(account=scope.account, ticket_id=ticket_id)


TicketDep = Annotated[TicketView, Depends(load_ticket)]
