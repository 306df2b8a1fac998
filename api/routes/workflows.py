"""The workflow definitions this service runs, and publishing new versions of them."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response, status
from starlette.exceptions import HTTPException

from workflow import Definition, DefinitionError, Forbidden
from workflow.guards import sentence

from ..deps import EngineDep, PrincipalDep
from ..schemas import (
    PublishedVersion,
    ValidationVerdict,
    WorkflowDetail,
    WorkflowSummary,
    WorkflowVersion,
)
from ..tokens import Principal

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The definition, as YAML text (`Content-Type: application/yaml`).",
        "content": {"application/yaml": {"schema": {"type": "string"}}},
    }
}
UNSUPPORTED = {415: {"description": "The body is not sent as application/yaml"}}


def _summary(d: Definition) -> dict[str, object]:
    return {
        "name": d.name,
        "version": d.version,
        "hash": d.hash,
        "title": d.spec.title,
        "states": len(d.spec.states),
        "transitions": len(d.transitions),
    }


def require_designer(principal: Principal, action: str) -> None:
    if not (principal.is_admin or principal.is_designer):
        raise Forbidden(principal.role, action, ["admin", "designer"])


async def _yaml_text(request: Request) -> str:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in YAML_TYPES:
        raise HTTPException(
            415, f"send the definition as YAML text (Content-Type: application/yaml), not {media!r}"
        )
    body = await request.body()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError([f"not UTF-8 text (byte {exc.start})"], "body") from None


@router.get("", response_model=list[WorkflowSummary])
def list_workflows(engine: EngineDep, _caller: PrincipalDep) -> list[WorkflowSummary]:
    """The latest published version of every workflow (any token)."""
    return [WorkflowSummary.model_validate(_summary(d)) for d in engine.definitions()]


@router.post(
    "/validate",
    response_model=ValidationVerdict,
    openapi_extra=YAML_BODY,
    responses=UNSUPPORTED,  # type: ignore[arg-type]
)
async def validate_workflow(
    request: Request, engine: EngineDep, _caller: PrincipalDep
) -> ValidationVerdict:
    """The verdict publishing this YAML would get, storing nothing (any token): 200 with what
    publishing would do, 409 if its version is published with other content, 422 listing every
    problem with its line and column."""
    text = await _yaml_text(request)
    d, new = await asyncio.to_thread(engine.validate_text, text)
    return ValidationVerdict(
        name=d.name, version=d.version, hash=d.hash, publish="new" if new else "already published"
    )


@router.post(
    "/{name}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=PublishedVersion,
    openapi_extra=YAML_BODY,
    responses={200: {"description": "That very content was published before"}, **UNSUPPORTED},  # type: ignore[dict-item]
)
async def publish_workflow(
    name: str, request: Request, response: Response, engine: EngineDep, caller: PrincipalDep
) -> PublishedVersion:
    """Publish a version of workflow `name` (platform admin or designer). 201 when stored;
    200 when that very content was published before (same answer); 409 when its version is
    published with other content (published versions never change); 422 listing every
    problem with its line and column. The latest published version is what accounts that
    chose none give their new tickets."""
    require_designer(caller, "publish workflow versions")
    text = await _yaml_text(request)
    published = await asyncio.to_thread(engine.publish_text, text, name=name)
    if not published.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/workflows/{name}?version={published.version}"
    return PublishedVersion(name=published.name, version=published.version, hash=published.hash)


@router.get("/{name}", response_model=WorkflowDetail)
def get_workflow(
    name: str, engine: EngineDep, _caller: PrincipalDep, version: str | None = None
) -> WorkflowDetail:
    """One definition (the latest published, or `?version=` by human version or hash), with
    every published version of it, newest first, and each transition's guards as plain
    sentences."""
    d = engine.definition(name, version)
    versions = [
        WorkflowVersion(version=v, hash=h, first_seen=at) for v, h, at in engine.versions(name)
    ]
    sentences = [[sentence(d.spec, g) for g in t.guards] for t in d.spec.transitions]
    return WorkflowDetail.model_validate(
        {
            **_summary(d),
            "versions": versions,
            "definition": d.to_dict(),
            "guard_sentences": sentences,
        }
    )
