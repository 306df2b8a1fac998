"""Liveness with a database check (no token needed), and metrics (admin token)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from workflow import Forbidden

from ..deps import EngineDep, PrincipalDep
from ..observability import metrics_payload
from ..schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(engine: EngineDep) -> JSONResponse:
    ok = engine.db.ping()
    body = Health(status="ok" if ok else "unavailable", database="ok" if ok else "unreachable")
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(principal: PrincipalDep) -> Response:
    """Prometheus metrics (the platform admin's token)."""
    if not principal.is_admin:
        raise Forbidden(principal.role, "read metrics", ["admin"])
    return Response(metrics_payload(), media_type=CONTENT_TYPE_LATEST)
