"""A diagnostic beside the API figure: tierflow's own app - routes, token check, validation,
problem mapping, metrics, serialisation - with the engine's unit of work answered from a cache.

The first ``fire`` of each (ticket, trigger) runs the real engine; every later one returns
that first answer (same ticket id, same resulting state, so the load generator's
``request_info`` <-> ``customer_replied`` loop goes on). What remains is what the HTTP layer
costs per request, measured against the same ceiling as tierflow itself:

    TIERFLOW_DATABASE_URL=sqlite:///… uvicorn bench.floor_app:create_app --factory

Benchmark code only: nothing in ``api/`` or ``workflow/`` knows about it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def create_app() -> FastAPI:
    from api.app import app_from_env

    app = app_from_env()
    engine = app.state.engine
    real = engine.fire
    answers: dict[tuple[int, str], Any] = {}

    def fire(**kw: Any) -> Any:
        key = (kw["ticket_id"], kw["trigger"])
        view = answers.get(key)
        if view is None:
            view = answers[key] = real(**kw)
        return view

    engine.fire = fire  # the instance attribute shadows the method for this process only
    return app
