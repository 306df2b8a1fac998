"""Accounts (tenants) and their tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from workflow import Forbidden

from ..deps import EngineDep, PrincipalDep, ScopeDep, TokensDep
from ..schemas import AccountCreate, AccountPublic, TokenCreate, TokenPublic

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AccountPublic)
def create_account(
    body: AccountCreate, principal: PrincipalDep, engine: EngineDep, response: Response
) -> AccountPublic:
    """Create an account (platform admin only)."""
    if not principal.is_admin:
        raise Forbidden(principal.role, "create accounts", ["admin"])
    account_id = engine.create_account(slug=body.slug, name=body.name)
    response.headers["Location"] = f"/v1/accounts/{body.slug}"
    return AccountPublic(id=account_id, slug=body.slug, name=body.name.strip())


@router.post("/{acct}/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenPublic)
def create_token(
    body: TokenCreate, scope: ScopeDep, tokens: TokensDep, response: Response
) -> TokenPublic:
    """Issue a token for one role of this account (admin, or this account's supervisor).
    The token is shown only in this answer (never cached: `Cache-Control: no-store`)."""
    if not (scope.principal.is_admin or scope.role == "supervisor"):
        raise Forbidden(scope.role, "issue tokens", ["admin", "supervisor"])
    token_id, token = tokens.issue(account=scope.account, role=body.role, name=body.name)
    response.headers["Cache-Control"] = "no-store"
    return TokenPublic(id=token_id, role=body.role, name=body.name.strip(), token=token)
