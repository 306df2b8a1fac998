"""Which version of a workflow an account's new tickets get (tickets keep theirs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from workflow import Definition, Forbidden, NotFound

from ..deps import EngineDep, PrincipalDep
from ..schemas import AccountWorkflow, AccountWorkflowChoice
from ..tokens import Principal

router = APIRouter(prefix="/v1/accounts/{acct}/workflow", tags=["workflows"])


def _in_scope(principal: Principal, acct: str, request: Request) -> None:
    """The platform admin and designers reach every account; others only their own (404)."""
    if principal.is_admin or principal.is_designer:
        request.app.state.engine.account_id(acct)  # 404 for an unknown account
    elif principal.account != acct:
        raise NotFound("account", acct)


def _answer(d: Definition, chosen: bool) -> AccountWorkflow:
    return AccountWorkflow(name=d.name, version=d.version, hash=d.hash, chosen=chosen)


@router.get("", response_model=AccountWorkflow)
def get_account_workflow(
    acct: str,
    request: Request,
    engine: EngineDep,
    caller: PrincipalDep,
    name: Annotated[str, Query(min_length=1, max_length=64)] = "support",
) -> AccountWorkflow:
    """The version of workflow `name` this account's new tickets get (any token of the
    account, the admin, a designer)."""
    _in_scope(caller, acct, request)
    d, chosen = engine.account_workflow(account=acct, workflow=name)
    return _answer(d, chosen)


@router.put("", response_model=AccountWorkflow)
def put_account_workflow(
    acct: str,
    body: AccountWorkflowChoice,
    request: Request,
    engine: EngineDep,
    caller: PrincipalDep,
) -> AccountWorkflow:
    """Choose the published version of a workflow this account's new tickets get (admin,
    designer, or the account's supervisor); `version` null: the latest published, whichever
    that is when a ticket is created. Tickets already created keep theirs."""
    _in_scope(caller, acct, request)
    if not (caller.is_admin or caller.is_designer or caller.role == "supervisor"):
        raise Forbidden(
            caller.role,
            "choose the account's workflow version",
            ["admin", "designer", "supervisor"],
        )
    d, chosen = engine.choose_workflow(account=acct, workflow=body.name, version=body.version)
    return _answer(d, chosen)
