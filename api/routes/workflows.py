"""The workflow definitions this service runs."""

from __future__ import annotations

from fastapi import APIRouter

from workflow import Definition
from workflow.guards import sentence

from ..deps import EngineDep, PrincipalDep
from ..schemas import WorkflowDetail, WorkflowSummary, WorkflowVersion

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


def _summary(d: Definition) -> dict[str, object]:
    return {
        "name": d.name,
        "version": d.version,
        "hash": d.hash,
        "title": d.spec.title,
        "states": len(d.spec.states),
        "transitions": len(d.transitions),
    }


@router.get("", response_model=list[WorkflowSummary])
def list_workflows(engine: EngineDep, _caller: PrincipalDep) -> list[WorkflowSummary]:
    """The current version of every workflow loaded (any token)."""
    return [WorkflowSummary.model_validate(_summary(d)) for d in engine.definitions()]


@router.get("/{name}", response_model=WorkflowDetail)
def get_workflow(
    name: str, engine: EngineDep, _caller: PrincipalDep, version: str | None = None
) -> WorkflowDetail:
    """One definition (the current version, or `?version=` by human version or hash), with
    every stored version of it and each transition's guards as plain sentences."""
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
