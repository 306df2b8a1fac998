"""Tokens of the platform's own roles (no account): the designer's."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from workflow import Forbidden

from ..deps import PrincipalDep, TokensDep
from ..schemas import Text, TokenInfoPublic, TokenPublic
from ..tokens import Principal

router = APIRouter(prefix="/v1/tokens", tags=["accounts"])


class PlatformTokenCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"role": "designer", "name": "Dana"}]}
    )

    role: Literal["designer"] = Field(
        description="`designer`: writes, validates and publishes workflow definitions and "
        "chooses the version each account runs."
    )
    name: Text = Field(min_length=1, max_length=200, description="Who holds it.")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenPublic)
def create_platform_token(
    body: PlatformTokenCreate, principal: PrincipalDep, tokens: TokensDep, response: Response
) -> TokenPublic:
    """Issue a platform token (admin only): a `designer`'s, which belongs to no account. Shown
    only in this answer (`Cache-Control: no-store`)."""
    _require_admin(principal, "issue platform tokens")
    token_id, token = tokens.issue_platform(role=body.role, name=body.name)
    response.headers["Cache-Control"] = "no-store"
    return TokenPublic(
        id=token_id, role=body.role, name=body.name.strip(), user=None, expires_at=None, token=token
    )


@router.get("", response_model=list[TokenInfoPublic])
def list_platform_tokens(principal: PrincipalDep, tokens: TokensDep) -> list[TokenInfoPublic]:
    """The platform's tokens (admin only): designers', revoked ones too; never the secrets."""
    _require_admin(principal, "list platform tokens")
    return [TokenInfoPublic.of(t) for t in tokens.tokens(account=None)]


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"description": "No such platform token (problem+json)"}},
)
def revoke_platform_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], principal: PrincipalDep, tokens: TokensDep
) -> Response:
    """Revoke a designer token (admin only): every worker and host refuses it (401) within
    half a second."""
    _require_admin(principal, "revoke platform tokens")
    tokens.revoke(account=None, token_id=token_id)
    return Response(status_code=204)


def _require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(principal.role, action, ["admin"])
