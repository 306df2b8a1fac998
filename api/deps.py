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


async def get_principal(
    tokens: TokensDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    if not authorization:
        raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    principal = tokens.resolve(token.strip())
    if principal is None:
        raise Unauthorized("unknown or revoked token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True, slots=True)
class Scope:
    """The account a request acts on, and who acts."""

    account: str
    principal: Principal

    @property
    def role(self) -> str:
        return self.principal.role

    @property
    def actor(self) -> str:
        return self.principal.name


async def get_scope(acct: str, principal: PrincipalDep, engine: EngineDep) -> Scope:
    if principal.is_admin:
        engine.account_id(acct)  # 404 for an unknown account
    elif principal.account != acct:
        raise NotFound("account", acct)
    return Scope(acct, principal)


ScopeDep = Annotated[Scope, Depends(get_scope)]


async def load_ticket(ticket_id: int, scope: ScopeDep, engine: EngineDep) -> TicketView:
    return engine.get_ticket(account=scope.account, ticket_id=ticket_id)


TicketDep = Annotated[TicketView, Depends(load_ticket)]
