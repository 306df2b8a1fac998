"""The process designer's questions: what changed between two versions (diff, as JSON or drawn),
moving an account's open tickets to another version (migrations), and what a candidate
definition would have done to an account's real tickets (what-if)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

import diagrams
from workflow import Definition, InputError, NotFound, Tierflow
from workflow.definition import check_text
from workflow.diff import diff
from workflow.migrate import named_version
from workflow.whatif import what_if

from ..deps import EngineDep, PrincipalDep, Scope, _principal
from ..schemas import (
    MigrationPublic,
    MigrationRequest,
    WhatIfPublic,
    WhatIfRequest,
    WorkflowDiff,
)
from .diagrams import IMAGE, _image, _show

router = APIRouter(tags=["designer"])


def designer_scope(request: Request, acct: str) -> Scope:
    """The account's own tokens, and the platform's admin and designers (any account; 404 for
    an unknown one). Which roles may act is the domain's decision (``MIGRATORS``)."""
    principal = _principal(request.app.state.tokens, request.headers.get("authorization"))
    engine: Tierflow = request.app.state.engine
    if principal.is_admin or principal.is_designer:
        engine.account_id(acct)
    elif principal.account != acct:
        raise NotFound("account", acct)
    return Scope(acct, principal, engine)


DesignerScope = Annotated[Scope, Depends(designer_scope)]

WHAT_IF_DEFAULT_DAYS = 30
From = Annotated[
    str | None,
    Query(alias="from", max_length=64, description="version (or hash); default: the one before"),
]
To = Annotated[
    str | None, Query(max_length=64, description="version (or hash); default: the newest")
]


def _pair(engine: Tierflow, name: str, old: str | None, new: str | None) -> tuple[Definition, ...]:
    """The two versions to compare (newest and the one before it by default)."""
    engine.definition(name)  # 404 for an unknown workflow
    stored = [v for v, _h, _at in engine.versions(name)]  # newest first
    to = named_version(engine, name, new, "to") if new else engine.definition(name)
    if old is None:
        older = [v for v in stored if v != to.version]
        old = older[0] if older else to.version
    return named_version(engine, name, old, "from"), to


@router.get("/v1/workflows/{name}/diff", response_model=WorkflowDiff)
def workflow_diff(
    name: str, engine: EngineDep, _caller: PrincipalDep, from_: From = None, to: To = None
) -> Any:
    """What changed from one version to another: states, transitions, guards, roles, SLA clocks
    and the calendar, each added / removed / changed (any token)."""
    old, new = _pair(engine, name, from_, to)
    return diff(old, new).to_dict()


@router.get("/v1/workflows/{name}/diff.{fmt}", responses=IMAGE, response_class=Response)
def workflow_diff_diagram(
    name: str,
    fmt: Literal["svg", "png", "dot", "mmd"],
    engine: EngineDep,
    _caller: PrincipalDep,
    from_: From = None,
    to: To = None,
    show: Annotated[str | None, Query(description="comma list: guards,roles")] = None,
) -> Response:
    """The newer version drawn with what changed marked: added (green), removed (red, dashed),
    changed (amber), with a legend."""
    old, new = _pair(engine, name, from_, to)
    d = diagrams.diff_diagram(old, new, _show(show), legend_nodes=fmt == "mmd")
    return _image(diagrams.render(d, fmt), fmt)


@router.post("/v1/accounts/{acct}/migrations", response_model=MigrationPublic)
def migrate(body: MigrationRequest, scope: DesignerScope) -> Any:
    """Move this account's open tickets from one version to another (admin, designer, the
    account's supervisor). `dry_run` (the default) lists per ticket its state before and after
    and whether it can move; otherwise each ticket that can moves in its own transaction (a
    `migrated` event, outbox `ticket.migrated`)."""
    report = scope.engine.migrate(
        account=scope.account,
        workflow=body.workflow,
        from_version=body.from_version,
        to_version=body.to_version,
        state_map=body.state_map,
        dry_run=body.dry_run,
        role=scope.role,
        actor=scope.actor,
    )
    return report.to_dict()


@router.post("/v1/accounts/{acct}/what-if", response_model=WhatIfPublic)
def ask_what_if(body: WhatIfRequest, scope: DesignerScope) -> Any:
    """Replay this account's real history (tickets received in the window) through a candidate
    - a published version or YAML text - and compare with what happened: attainment, breaches
    by priority, median business time to first response, and the events the candidate would
    have refused. Nothing is written (admin, designer, the account's supervisor). An invalid
    YAML candidate is a 422 `invalid-definition` listing every problem with its line."""
    engine = scope.engine
    candidate = _candidate(engine, body)
    now = engine.clock()
    until = body.to or now
    since = body.from_ or _days_before(until, WHAT_IF_DEFAULT_DAYS)
    report = what_if(
        engine,
        account=scope.account,
        candidate=candidate,
        since=since,
        until=until,
        role=scope.role,
    )
    return report.to_dict()


def _days_before(until: datetime, days: int) -> datetime:
    try:
        return until - timedelta(days=days)
    except OverflowError:  # `to` in the first days of year 1
        raise InputError("to", f"{until.isoformat()} leaves no {days} days before it") from None


def _candidate(engine: Tierflow, body: WhatIfRequest) -> Definition:
    c = body.candidate
    if (c.version is None) == (c.yaml is None):
        raise InputError("candidate", "give exactly one of version (published) or yaml (text)")
    if c.version is not None:
        return named_version(engine, body.workflow, c.version, "candidate.version")
    assert c.yaml is not None
    return check_text(c.yaml, name=body.workflow, source="candidate.yaml")
