"""Diagrams over HTTP: the workflow (cached per definition version, with an ETag), one ticket's
place in it, and the live load of one account."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response

import diagrams
from workflow import Forbidden, InputError
from workflow.stats import state_stats

from ..deps import EngineDep, PrincipalDep, ScopeDep, TicketDep

router = APIRouter(tags=["diagrams"])

Format = Literal["svg", "png", "dot", "mmd"]
IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {media: {} for media in diagrams.MEDIA_TYPES.values()},
        "description": "The diagram (SVG, PNG, Graphviz DOT or Mermaid source)",
    },
    503: {"description": "Graphviz (`dot`) is not installed: SVG/PNG unavailable"},
}
NOT_MODIFIED: dict[str, Any] = {
    "description": "Not modified: `If-None-Match` names the current ETag (no body)",
    "headers": {"ETag": {"schema": {"type": "string"}}},
}


def _image(data: bytes, fmt: str, etag: str | None = None) -> Response:
    headers = (
        {"ETag": etag, "Cache-Control": "private, max-age=0, must-revalidate"}
        if etag
        else {"Cache-Control": "no-store"}
    )
    return Response(data, media_type=diagrams.MEDIA_TYPES[fmt], headers=headers)


def _show(show: str | None) -> frozenset[str]:
    try:
        return diagrams.parse_show(show)
    except ValueError as exc:
        raise InputError("show", str(exc)) from None


@router.get(
    "/v1/workflows/{name}/diagram.{fmt}",
    responses={**IMAGE, 304: NOT_MODIFIED},
    response_class=Response,
)
def workflow_diagram(
    name: str,
    fmt: Format,
    engine: EngineDep,
    _caller: PrincipalDep,
    version: str | None = None,
    show: Annotated[str | None, Query(description="comma list: guards,roles")] = None,
    focus: Annotated[
        str | None,
        Query(max_length=100, description="a state: only it, what leads in, what leads out"),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The whole workflow, or one state's neighbourhood (`focus`); cached per definition
    version (304 on a matching If-None-Match)."""
    definition = engine.definition(name, version)
    shown = _show(show)
    if focus is not None:
        try:
            focused = diagrams.focus_diagram(definition, focus, shown)
        except ValueError as exc:
            raise InputError("focus", str(exc)) from None
    tag = f"{definition.hash}-{fmt}-{'+'.join(sorted(shown)) or 'plain'}"
    etag = f'"{tag}-focus-{focus}"' if focus is not None else f'"{tag}"'
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    if focus is not None:
        return _image(diagrams.render(focused, fmt), fmt, etag)
    return _image(diagrams.workflow_image(definition, fmt, shown), fmt, etag)


@router.get(
    "/v1/accounts/{acct}/tickets/{ticket_id}/diagram.{fmt}",
    responses=IMAGE,
    response_class=Response,
)
def ticket_diagram(
    fmt: Format,
    ticket: TicketDep,
    scope: ScopeDep,
    view: Annotated[
        Literal["workflow", "path"],
        Query(description="`path`: only the states visited and the transitions taken"),
    ] = "workflow",
) -> Response:
    """One ticket: its current state, the path it took (numbered), time in each state, and the
    triggers the caller's role may fire now (blocked ones dashed, reasons as tooltips) - on
    the faded workflow, or (`view=path`) alone."""
    definition = scope.engine.definition(ticket.workflow, ticket.definition_hash)
    events = scope.engine.events(account=scope.account, ticket_id=ticket.id)
    options = scope.engine.explain(account=scope.account, ticket_id=ticket.id, role=scope.role)
    d = diagrams.ticket_diagram(
        definition, ticket, events, options, scope.engine.clock(), path_only=view == "path"
    )
    return _image(diagrams.render(d, fmt), fmt)


@router.get(
    "/v1/accounts/{acct}/workflows/{name}/diagram.{fmt}",
    responses={**IMAGE, 304: NOT_MODIFIED},
    response_class=Response,
)
def live_diagram(
    name: str,
    fmt: Format,
    scope: ScopeDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The workflow with this account's load: tickets per state now, how many breach an SLA
    clock, median time spent there. Always live (the plain workflow is
    `/v1/workflows/{name}/diagram.{fmt}`). The ETag is derived from the counts, so a page can
    poll with `If-None-Match` and get a bodiless 304 until a ticket moves."""
    if scope.viewer.own_only:  # the account's load is not a requester's to see
        raise Forbidden(scope.role, "see the account's live load", ["staff", "integration"])
    definition = scope.engine.definition(name)
    stats = state_stats(scope.engine, account=scope.account, workflow=name)
    digest = hashlib.sha256(
        repr((definition.hash, fmt, scope.account, sorted(stats.items()))).encode()
    ).hexdigest()[:24]
    etag = f'"live-{digest}"'
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    d = diagrams.live_diagram(definition, stats, account=scope.account)
    return _image(diagrams.render(d, fmt), fmt, etag)
