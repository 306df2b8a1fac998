"""Tokens of the platform's own roles (no account): the designer's."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from workflow import Forbidden

from ..deps import PrincipalDep, TokensDep
from ..schemas import Text, TokenPublic

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
    if not principal.is_admin:
        raise Forbidden(principal.role, "issue platform tokens", ["admin"])
    token_id, token = tokens.issue_platform(role=body.role, name=body.name)
    response.headers["Cache-Control"] = "no-store"
    return TokenPublic(
        id=token_id, role=body.role, name=body.name.strip(), user=None, expires_at=None, token=token
    )
