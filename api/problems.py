"""Errors are answers: every refusal becomes an RFC 9457 ``application/problem+json`` body.

One table maps the domain's exception hierarchy (``workflow.errors``) to a status and a stable
``type``; nothing else in ``api/`` builds error responses by hand.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from diagrams import GraphvizMissing, RenderError
from workflow import errors as e

from .observability import count_guard_refusal

log = logging.getLogger("tierflow")
MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 2
TYPE_BASE = "/problems/"

# exception class -> (status, type slug, title)
_TABLE: list[tuple[type[e.TierflowError], int, str, str]] = [
    (e.NotFound, 404, "not-found", "Not found"),
    (e.UnknownTrigger, 404, "unknown-trigger", "Unknown trigger"),
    (e.InvalidTransition, 409, "invalid-transition", "Trigger not possible now"),
    (e.GuardFailed, 422, "guard-failed", "Refused by guard"),
    (e.Forbidden, 403, "forbidden", "Not allowed for this role"),
    (e.VersionMismatch, 412, "version-mismatch", "Version mismatch"),
    (e.Conflict, 409, "conflict", "Concurrent update"),
    (e.IdempotencyMismatch, 422, "idempotency-key-reused", "Idempotency key reused"),
    (e.AlreadyExists, 409, "conflict", "Already exists"),
    (e.VersionTaken, 409, "version-taken", "Version published with other content"),
    (e.DefinitionError, 422, "invalid-definition", "Invalid workflow definition"),
    (e.InputError, 422, "validation", "Invalid request"),
]


class Unauthorized(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


class ServiceUnavailable(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


ERROR_STATUSES = {
    401: "Missing or invalid token",
    403: "The caller's role may not do this",
    404: "Unknown account, ticket, workflow or trigger (or one of another account)",
    409: "Trigger not possible from the current state, a concurrent update won, the "
    "name is taken, or a workflow version is published with other content",
    412: "If-Match names a stale version",
    422: "Invalid request, a guard refused (reasons listed), or an invalid workflow "
    "definition (every problem listed, with its line)",
}


def document(app: FastAPI, vocabulary: Callable[[], dict[str, list[str]]] | None = None) -> None:
    """Every error answer in the OpenAPI document is ``application/problem+json`` with the
    Problem schema (FastAPI would otherwise describe 422 as its own JSON shape).

    ``vocabulary`` gives the values the server accepts, from the loaded definitions, as enums:
    ``"Model.field"`` for a body field, ``"?name"`` for every query parameter of that name."""
    from fastapi.openapi.utils import get_openapi

    from .schemas import Problem

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        ref = {"$ref": "#/components/schemas/Problem"}
        for path in schema["paths"].values():
            for op in path.values():
                for status, answer in op.get("responses", {}).items():
                    if status[0] in "45":
                        answer["content"] = {MEDIA_TYPE: {"schema": ref}}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema()
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        for path in schema["paths"].values():  # a header is a string or absent, never null
            for op in path.values():
                for param in op.get("parameters", []):
                    branches = param["schema"].get("anyOf", [])
                    if param["in"] == "header" and {"type": "null"} in branches:
                        (param["schema"],) = [b for b in branches if b != {"type": "null"}]
        for key, values in (vocabulary() if vocabulary else {}).items():
            if key.startswith("?"):
                targets = [
                    p["schema"]
                    for path in schema["paths"].values()
                    for op in path.values()
                    for p in op.get("parameters", [])
                    if p["in"] == "query" and p["name"] == key[1:]
                ]
            else:
                model, field = key.split(".")
                targets = [components[model]["properties"][field]]
            for target in targets:
                _restrict(target, values)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _allowed(request: Request) -> list[str]:
    """The methods served at this request's path, from the OpenAPI document (FastAPI has one
    route per method, so a 405 from routing alone names only the first route's). A path
    documented literally (``/v1/workflows/validate``) is its own resource: a template that
    also matches it (``/v1/workflows/{name}``) does not add its methods."""
    table: list[tuple[re.Pattern[str], list[str], bool]] | None = getattr(
        request.app.state, "allow_table", None
    )
    if table is None:
        table = [
            (
                re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"),
                [method.upper() for method in ops],
                "{" not in path,
            )
            for path, ops in request.app.openapi()["paths"].items()
        ]
        request.app.state.allow_table = table
    path = request.url.path
    matches = [(methods, literal) for pattern, methods, literal in table if pattern.match(path)]
    if any(literal for _methods, literal in matches):
        matches = [(methods, literal) for methods, literal in matches if literal]
    return sorted({m for methods, _literal in matches for m in methods})


def _restrict(prop: dict[str, Any], values: list[str]) -> None:
    """Put the enum on the string branch of a (possibly nullable) property schema."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            for loose in ("minLength", "maxLength", "pattern"):
                branch.pop(loose, None)
            branch["enum"] = values


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _extensions(exc: e.TierflowError, where: str) -> dict[str, Any]:
    if isinstance(exc, e.GuardFailed):
        return {
            "trigger": exc.trigger,
            "reasons": [{"guard": r.guard, "message": r.message} for r in exc.reasons],
        }
    if isinstance(exc, e.InvalidTransition):
        return {"state": exc.state, "possible": exc.possible}
    if isinstance(exc, e.UnknownTrigger):
        return {"known": exc.known}
    if isinstance(exc, e.VersionMismatch):
        return {"current_version": exc.current}
    if isinstance(exc, e.InputError):
        return {"errors": [{"loc": [where, *exc.field.split(".")], "msg": exc.detail}]}
    if isinstance(exc, e.Forbidden):
        return {"role": exc.role, "allowed": exc.allowed}
    if isinstance(exc, e.DefinitionError):
        return {
            "errors": [
                {"line": p.line, "column": p.column, "path": p.path, "message": p.message}
                for p in exc.errors
            ]
        }
    if isinstance(exc, e.VersionTaken):
        return {"name": exc.name, "version": exc.version, "hash": exc.hash}
    return {}


def _location(request: Request | None, exc: e.TierflowError) -> str:
    """Where the field an InputError names came from: a query parameter, a header or the body."""
    if request is None or not isinstance(exc, e.InputError):
        return "body"
    name = exc.field.split(".")[0]
    if name in request.query_params:
        return "query"
    if name.lower() in request.headers:
        return "header"
    return "body"


def domain_problem(exc: e.TierflowError, request: Request | None = None) -> JSONResponse:
    if isinstance(exc, e.GuardFailed):
        count_guard_refusal(exc.trigger, [r.guard for r in exc.reasons])
    for cls, status, slug, title in _TABLE:
        if isinstance(exc, cls):
            extensions = _extensions(exc, _location(request, exc))
            return problem(status, slug, title, exc.detail, **extensions)
    return problem(500, "internal", "Internal error", exc.detail)


def install(app: FastAPI) -> None:
    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.TierflowError)
        return domain_problem(exc, request)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        where = ", ".join(".".join(str(p) for p in err["loc"]) for err in errors[:5])
        return problem(
            422,
            "validation",
            "Invalid request",
            f"{len(errors)} invalid field(s): {where}",
            errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # a body FastAPI could not even parse: malformed input
            return problem(
                422,
                "validation",
                "Invalid request",
                f"malformed request body: {exc.detail}",
                errors=[{"loc": ["body"], "msg": str(exc.detail), "type": "malformed"}],
            )
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        answer = problem(exc.status_code, slug, str(exc.detail), str(exc.detail))
        answer.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not just one route's
            answer.headers["Allow"] = ", ".join(_allowed(request))
        return answer

    async def on_unauthorized(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Unauthorized)
        return problem(401, "unauthorized", "Unauthorized", exc.detail)

    async def on_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceUnavailable)
        return problem(503, "unavailable", "Service unavailable", exc.detail)

    async def on_graphviz_missing(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GraphvizMissing)
        return problem(503, "graphviz-missing", "Graphviz is not installed", exc.detail)

    async def on_render_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RenderError)
        return problem(500, "render-failed", "Rendering failed", exc.detail)

    async def on_unstorable(_request: Request, exc: Exception) -> JSONResponse:
        # a value the database refuses (e.g. NUL in a PostgreSQL text column): the request's
        # fault, and its transaction was rolled back
        assert isinstance(exc, sa.exc.DataError)
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        return problem(
            422,
            "validation",
            "Invalid request",
            f"a value in the request cannot be stored: {reason}",
        )

    async def on_database_down(_request: Request, exc: Exception) -> JSONResponse:
        # the database is unreachable (restart, network, pool exhausted): a passing state
        log.warning("database unavailable: %s", str(exc).splitlines()[0])
        answer = problem(
            503,
            "database-unavailable",
            "Service unavailable",
            "the database cannot be reached right now; retry shortly",
        )
        answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return answer

    app.add_exception_handler(sa.exc.OperationalError, on_database_down)
    app.add_exception_handler(sa.exc.InterfaceError, on_database_down)
    app.add_exception_handler(sa.exc.DisconnectionError, on_database_down)
    app.add_exception_handler(sa.exc.TimeoutError, on_database_down)
    app.add_exception_handler(sa.exc.DataError, on_unstorable)
    app.add_exception_handler(GraphvizMissing, on_graphviz_missing)
    app.add_exception_handler(RenderError, on_render_error)
    app.add_exception_handler(e.TierflowError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Unauthorized, on_unauthorized)
    app.add_exception_handler(ServiceUnavailable, on_unavailable)
