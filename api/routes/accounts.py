"""Accounts (tenants), their people and their tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from workflow import Forbidden
from workflow.settings import UNCHANGED, AccountSettings

from ..deps import EngineDep, PrincipalDep, Scope, ScopeDep, TokensDep
from ..schemas import (
    AccountCreate,
    AccountPublic,
    AccountSettingsPublic,
    AccountUpdate,
    TokenCreate,
    TokenInfoPublic,
    TokenPublic,
    UserCreate,
    UserPublic,
)

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
MANAGERS = ["admin", "supervisor"]


def _require_manager(scope: Scope, action: str) -> None:
    if not (scope.principal.is_admin or scope.role == "supervisor"):
        raise Forbidden(scope.role, action, MANAGERS)


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


def _settings(s: AccountSettings) -> AccountSettingsPublic:
    cal = None if s.calendar is None else s.calendar.model_dump(mode="json")
    resolved = len(cal.pop("country_holidays", None) or []) if cal is not None else 0
    return AccountSettingsPublic(slug=s.slug, name=s.name, calendar=cal, country_holidays=resolved)


@router.get("/{acct}", response_model=AccountSettingsPublic)
def get_account(scope: ScopeDep) -> AccountSettingsPublic:
    """The account's name and business calendar (any token of the account)."""
    return _settings(scope.engine.account_settings(account=scope.account))


@router.patch("/{acct}", response_model=AccountSettingsPublic)
def update_account(body: AccountUpdate, scope: ScopeDep) -> AccountSettingsPublic:
    """Rename the account and/or set the business calendar of its new tickets (admin, or this
    account's supervisor). Country holidays are resolved to dates now and stored; open tickets
    keep the calendar they were created with."""
    _require_manager(scope, "change the account")
    given = body.model_fields_set
    calendar: Any = UNCHANGED
    if "calendar" in given:
        calendar = None if body.calendar is None else body.calendar.model_dump(exclude_none=True)
    found = scope.engine.update_account(account=scope.account, name=body.name, calendar=calendar)
    return _settings(found)


@router.post("/{acct}/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def create_user(body: UserCreate, scope: ScopeDep) -> UserPublic:
    """Add a person to the account, holding some of the workflow's roles (admin, or this
    account's supervisor). Issue them tokens with `POST …/tokens` and `user_id`."""
    _require_manager(scope, "add users")
    user = scope.engine.create_user(
        account=scope.account,
        name=body.name,
        email=body.email,
        roles=body.roles,
        org_wide=body.org_wide,
    )
    return UserPublic.of(user)


@router.get("/{acct}/users", response_model=list[UserPublic])
def list_users(scope: ScopeDep) -> list[UserPublic]:
    """The account's people (admin, or this account's supervisor)."""
    _require_manager(scope, "list users")
    return [UserPublic.of(u) for u in scope.engine.users(account=scope.account)]


@router.post("/{acct}/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenPublic)
def create_token(
    body: TokenCreate, scope: ScopeDep, tokens: TokensDep, response: Response
) -> TokenPublic:
    """Issue a token (admin, or this account's supervisor): for an existing user
    (`user_id`), for an integration (role `integration`), or for a new person named `name`
    holding `role`. The token is shown only in this answer (`Cache-Control: no-store`)."""
    _require_manager(scope, "issue tokens")
    token_id, token, user = tokens.issue(
        account=scope.account,
        role=body.role,
        name=body.name,
        user_id=body.user_id,
        email=body.email,
        expires_at=body.expires_at,
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenPublic(
        id=token_id,
        role=body.role,
        name=body.name.strip(),
        user=None if user is None else UserPublic.of(user),
        expires_at=body.expires_at,
        token=token,
    )


@router.get("/{acct}/tokens", response_model=list[TokenInfoPublic])
def list_tokens(scope: ScopeDep, tokens: TokensDep) -> list[TokenInfoPublic]:
    """The account's tokens: name, role, person, created, last used, expiry, revocation -
    never the secret (admin, or this account's supervisor)."""
    _require_manager(scope, "list tokens")
    return [TokenInfoPublic.of(t) for t in tokens.tokens(account=scope.account)]


@router.delete(
    "/{acct}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"description": "No such token in this account (problem+json)"}},
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], scope: ScopeDep, tokens: TokensDep
) -> Response:
    """Revoke a token (admin, or this account's supervisor): every worker and host refuses it
    (401) within half a second."""
    _require_manager(scope, "revoke tokens")
    tokens.revoke(account=scope.account, token_id=token_id)
    return Response(status_code=204)
