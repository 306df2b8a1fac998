"""Liveness with a database check (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import EngineDep
from ..schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(engine: EngineDep) -> JSONResponse:
    ok = engine.db.ping()
    body = Health(status="ok" if ok else "unavailable", database="ok" if ok else "unreachable")
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
