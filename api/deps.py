"""FastAPI dependencies: the engine, the caller, the account scope, the ticket loader.

Account scoping happens here, once: a token of another account gets the same 404 as an
unknown account, never a 403 and never data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from workflow import NotFound, TicketView, Tierflow

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


@dataclass(frozen=True, slots=True)
class Scope:
    """The account a request acts on, who acts, and the engine to act with."""

    account: str
    principal: Principal
    engine: Tierflow

    @property
    def role(self) -> str:
        return self.principal.role

    @property
    def actor(self) -> str:
        return self.principal.name


def get_scope(request: Request, acct: str) -> Scope:
    """Resolved in one step (it sits on the hot path of every ticket route). The token is read
    off the headers directly: it is not a documented parameter, and FastAPI's header parameter
    machinery costs more than the lookup."""
    principal = _principal(request.app.state.tokens, request.headers.get("authorization"))
    engine: Tierflow = request.app.state.engine
    if principal.is_admin:
        engine.account_id(acct)  # 404 for an unknown account
    elif principal.account != acct:
        raise NotFound("account", acct)
    return Scope(acct, principal, engine)


ScopeDep = Annotated[Scope, Depends(get_scope)]


def load_ticket(ticket_id: int, scope: ScopeDep) -> TicketView:
    return scope.engine.get_ticket(account=scope.account, ticket_id=ticket_id)


TicketDep = Annotated[TicketView, Depends(load_ticket)]
