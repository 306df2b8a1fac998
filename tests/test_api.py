"""The v1 HTTP contract: the seed scenario, every row of the error table, If-Match,
Idempotency-Key, pagination, roles and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api_client import ADMIN_TOKEN, Api, auth
from tests.conftest import FakeClock
from workflow import Tierflow

LOGIN_STEPS = ["verify_account", "check_lockout", "send_reset", "clear_session"]
PROBLEM = "application/problem+json"


@pytest.fixture
def globex(client: TestClient) -> Api:
    return Api(client, "globex")


def _problem(r: Any, status: int, type_end: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["type"].endswith(type_end)
    assert body["status"] == status
    assert body["detail"]
    return body


def test_seed_scenario_technical_through_every_level(acme: Api) -> None:
    t = acme.create(customer={"name": "Ana", "email": "ana@example.com"})
    assert (t["state"], t["level"], t["priority"], t["version"]) == ("new", None, None, 1)
    assert t["workflow"]["name"] == "support" and t["workflow"]["version"] == "1.0.0"
    tid = t["id"]
    assert acme.fire(tid, "triage", "l1_agent")["level"] == "level1"
    assert acme.patch(tid, complexity="medium", urgency="high")["priority"] == "P2"
    acme.fire(tid, "start_solving", "l1_agent")
    for step in LOGIN_STEPS:
        acme.step(tid, step, "failed")
    t = acme.fire(tid, "escalate", "l1_agent", data={"channel": "video"})
    assert (t["state"], t["level"], t["channel"]) == ("l2_solving", "level2", "video")
    acme.fire(tid, "escalate", "l2_specialist", note="SSO misconfigured on their IdP")
    t = acme.fire(
        tid,
        "plan_solution",
        "l3_engineer",
        data={"solvable": True, "estimate_hours": 12, "approach": "custom"},
    )
    assert t["level"] == "level3"
    t = acme.fire(tid, "resolve", "l3_engineer", note="Patched the SAML mapping")
    assert (t["state"], t["outcome"]) == ("resolved", "solved")
    t = acme.fire(tid, "close", "customer")
    assert t["state"] == "closed"
    events = acme.client.get(acme.url(f"/tickets/{tid}/events"), headers=acme.as_("customer"))
    assert [(e["seq"], e["kind"], e["trigger"], e["to_state"]) for e in events.json()] == [
        (1, "created", None, "new"),
        (2, "transition", "triage", "l1_triage"),
        (3, "field_update", None, None),
        (4, "transition", "start_solving", "l1_solving"),
        (5, "playbook_step", None, None),
        (6, "playbook_step", None, None),
        (7, "playbook_step", None, None),
        (8, "playbook_step", None, None),
        (9, "transition", "escalate", "l2_solving"),
        (10, "transition", "escalate", "l3_assessment"),
        (11, "transition", "plan_solution", "l3_solution"),
        (12, "transition", "resolve", "resolved"),
        (13, "transition", "close", "closed"),
    ]
    first = events.json()[1]
    assert (first["actor"], first["role"], first["from_state"]) == (
        "l1_agent of acme",
        "l1_agent",
        "new",
    )
    assert acme.client.app.state.engine.check() == []  # type: ignore[attr-defined]


def test_seed_scenario_administrative(acme: Api) -> None:
    a = acme.create(kind="administrative", category="pricing")
    acme.fire(a["id"], "take", "executive")
    assert acme.fire(a["id"], "resolve", "executive", note="price list sent")["state"] == (
        "resolved"
    )
    b = acme.create(kind="administrative", category="private_information")
    acme.fire(b["id"], "take", "executive")
    refused = acme.client.post(
        acme.url(f"/tickets/{b['id']}/triggers/resolve"),
        json={"note": "done"},
        headers=acme.as_("executive"),
    )
    body = _problem(refused, 422, "guard-failed")
    assert body["reasons"] == [
        {
            "guard": "admin_class",
            "message": "category 'private_information' is administrative class B, not A; class B "
            "matters must be referred to the supervisor (refer_to_supervisor)",
        }
    ]
    t = acme.fire(b["id"], "refer_to_supervisor", "executive")
    assert (t["state"], t["channel"]) == ("admin_supervisor", "email")
    assert acme.fire(b["id"], "resolve", "supervisor", note="data export sent")["outcome"] == (
        "solved"
    )


def test_ticket_shape_and_etag(acme: Api, clock: FakeClock) -> None:
    t = acme.create(complexity="low", urgency="critical", received_at="2026-11-24T09:30:00-04:00")
    r = acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("customer"))
    assert r.headers["etag"] == '"1"'
    body = r.json()
    assert set(body) == {
        "id",
        "account",
        "kind",
        "category",
        "subject",
        "description",
        "channel",
        "state",
        "level",
        "complexity",
        "urgency",
        "priority",
        "outcome",
        "playbook_position",
        "customer",
        "requester_id",
        "assignee_id",
        "version",
        "workflow",
        "created_at",
        "received_at",
        "updated_at",
        "sla",
    }
    assert body["received_at"] == "2026-11-24T13:30:00Z"
    assert body["created_at"] == "2026-11-24T14:00:00Z"
    assert body["priority"] == "P1"
    assert body["sla"]["first_response"] == {
        "target_business_seconds": 32400,
        "due_at": "2026-11-25T13:30:00Z",
        "status": "running",
        "stopped_at": None,
        "elapsed_business_seconds": 1800,
        "remaining_business_seconds": 30600,
        "breached_at": None,
    }
    assert body["sla"]["resolution"]["status"] == "none"


# --- the error table, row by row -------------------------------------------------------------
def test_validation_errors(acme: Api) -> None:
    c = acme.client
    for body, locs in [
        ({"kind": "technical"}, [["body", "category"], ["body", "subject"], ["body", "channel"]]),
        (
            {
                "kind": "technical",
                "category": "login_password",
                "subject": "x",
                "channel": "chat",
                "received_at": "2026-11-24T09:00:00",
            },
            [["body", "received_at"]],
        ),
        (
            {
                "kind": "technical",
                "category": "login_password",
                "subject": "x",
                "channel": "chat",
                "customer": {"name": "A", "email": "not-an-email"},
            },
            [["body", "customer", "email"]],
        ),
        (
            {
                "kind": "technical",
                "category": "login_password",
                "subject": "x",
                "channel": "chat",
                "colour": "red",
            },
            [["body", "colour"]],
        ),
    ]:
        r = c.post(acme.url("/tickets"), json=body, headers=acme.as_("customer"))
        assert [e["loc"] for e in _problem(r, 422, "validation")["errors"]] == locs
    r = c.post(
        acme.url("/tickets"),
        content=b"{not json",
        headers={**acme.as_("customer"), "content-type": "application/json"},
    )
    _problem(r, 422, "validation")
    # a bad enum the definition knows about: named by the domain, same problem type
    r = c.post(
        acme.url("/tickets"),
        json={"kind": "technical", "category": "login_password", "subject": "x", "channel": "fax"},
        headers=acme.as_("customer"),
    )
    body = _problem(r, 422, "validation")
    assert body["detail"] == (
        "channel: unknown channel 'fax' (known: chat, help_center, phone, video, email)"
    )
    assert body["errors"][0]["loc"] == ["body", "channel"]
    r = c.post(
        acme.url("/tickets/1/playbook/verify_account"),
        json={"outcome": "maybe"},
        headers=acme.as_("l1_agent"),
    )
    assert _problem(r, 422, "validation")["errors"][0]["loc"] == ["body", "outcome"]
    r = c.get(acme.url("/tickets?limit=0"), headers=acme.as_("customer"))
    assert _problem(r, 422, "validation")["errors"][0]["loc"] == ["query", "limit"]
    assert acme.client.app.state.engine.list_tickets(account="acme")[0] == []  # type: ignore


def test_not_found(acme: Api, globex: Api) -> None:
    theirs = globex.create()
    c = acme.client
    _problem(c.get(acme.url("/tickets/999"), headers=acme.as_("customer")), 404, "not-found")
    body = _problem(
        c.get(acme.url(f"/tickets/{theirs['id']}"), headers=acme.as_("customer")), 404, "not-found"
    )
    assert body["detail"] == f"ticket {theirs['id']} not found"
    body = _problem(
        c.get("/v1/accounts/initech/tickets", headers=auth(ADMIN_TOKEN)), 404, "not-found"
    )
    assert body["detail"] == "account 'initech' not found"
    _problem(c.get("/v1/nowhere", headers=acme.as_("customer")), 404, "not-found")


def test_unknown_trigger(acme: Api) -> None:
    t = acme.create()
    body = acme.fire(t["id"], "teleport", "admin", expect=404)
    assert body["type"].endswith("unknown-trigger")
    assert "triage" in body["known"]


def test_invalid_transition_lists_what_is_possible(acme: Api) -> None:
    t = acme.create()
    body = acme.fire(t["id"], "resolve", "admin", expect=409, note="x")
    assert body["type"].endswith("invalid-transition")
    assert body["possible"] == ["triage", "take", "cancel"]
    assert body["detail"] == (
        "trigger 'resolve' is not possible from state 'new'; possible now: triage, take, cancel"
    )


def test_guard_failed_lists_every_reason(acme: Api) -> None:
    t = acme.create()
    acme.fire(t["id"], "triage", "l1_agent")
    body = acme.fire(t["id"], "escalate", "l1_agent", expect=422)
    assert body["type"].endswith("guard-failed")
    assert [r["guard"] for r in body["reasons"]] == [
        "category_beyond",
        "priority_known",
        "data_channel",
    ]


def test_forbidden(acme: Api) -> None:
    t = acme.create()
    body = acme.fire(t["id"], "triage", "customer", expect=403)
    assert body["type"].endswith("forbidden")
    assert body["detail"] == (
        "role 'customer' may not fire 'triage' from 'new' (allowed: l1_agent)"
    )
    c = acme.client
    _problem(
        c.post("/v1/accounts", json={"slug": "x", "name": "x"}, headers=acme.as_("supervisor")),
        403,
        "forbidden",
    )
    _problem(
        c.post(
            acme.url("/tokens"),
            json={"role": "l1_agent", "name": "x"},
            headers=acme.as_("l1_agent"),
        ),
        403,
        "forbidden",
    )
    _problem(
        c.patch(
            acme.url(f"/tickets/{t['id']}"), json={"urgency": "low"}, headers=acme.as_("customer")
        ),
        403,
        "forbidden",
    )
    _problem(
        c.post(
            acme.url(f"/tickets/{t['id']}/responses"),
            json={"body": "hi"},
            headers=acme.as_("integration"),
        ),
        403,
        "forbidden",
    )


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "missing Authorization header: send 'Authorization: Bearer <token>'"),
        ("Basic dXNlcjpwYXNz", "Authorization header must be 'Bearer <token>'"),
        ("Bearer nope", "unknown, expired or revoked token"),
    ],
)
def test_unauthorized(acme: Api, header: str | None, detail: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = acme.client.get(acme.url("/tickets"), headers=headers)
    assert _problem(r, 401, "unauthorized")["detail"] == detail
    assert r.headers["www-authenticate"] == "Bearer"


def test_if_match(acme: Api) -> None:
    t = acme.create()
    c = acme.client
    url = acme.url(f"/tickets/{t['id']}/triggers/triage")
    r = c.post(url, headers={**acme.as_("l1_agent"), "If-Match": '"7"'})
    body = _problem(r, 412, "version-mismatch")
    assert body["current_version"] == 1
    r = c.post(url, headers={**acme.as_("l1_agent"), "If-Match": "banana"})
    assert _problem(r, 422, "validation")["errors"][0]["loc"] == ["header", "if-match"]
    r = c.post(url, headers={**acme.as_("l1_agent"), "If-Match": '"1"'})
    assert (r.status_code, r.headers["etag"]) == (200, '"2"')
    r = c.patch(
        acme.url(f"/tickets/{t['id']}"),
        json={"urgency": "low"},
        headers={**acme.as_("l1_agent"), "If-Match": '"1"'},
    )
    _problem(r, 412, "version-mismatch")
    r = c.patch(
        acme.url(f"/tickets/{t['id']}"),
        json={"urgency": "low"},
        headers={**acme.as_("l1_agent"), "If-Match": 'W/"2"'},
    )
    assert r.status_code == 200 and r.json()["version"] == 3


def test_conflict_after_bounded_retries(
    acme: Api, engine: Tierflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Somebody else always commits first: the unit retries, then answers 409 conflict."""
    t = acme.create()
    real_load = engine._load
    loads = []

    def always_stale(conn: Any, account_id: int, ticket_id: int, viewer: Any) -> dict[str, Any]:
        row = real_load(conn, account_id, ticket_id, viewer)
        loads.append(1)
        return {**row, "version": row["version"] - 1}

    monkeypatch.setattr(engine, "_load", always_stale)
    body = acme.fire(t["id"], "triage", "l1_agent", expect=409)
    assert body["type"].endswith("/conflict")
    assert len(loads) == 8
    monkeypatch.undo()
    assert (
        acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("customer")).json()[
            "version"
        ]
        == 1
    )


def test_idempotency_key(acme: Api, globex: Api) -> None:
    t = acme.create()
    c = acme.client
    url = acme.url(f"/tickets/{t['id']}/triggers/triage")
    h = {**acme.as_("l1_agent"), "Idempotency-Key": "k-1"}
    first = c.post(url, json={"note": "on it"}, headers=h)
    again = c.post(url, json={"note": "on it"}, headers=h)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = c.post(url, json={"note": "different"}, headers=h)
    assert _problem(other, 422, "idempotency-key-reused")["detail"] == (
        "Idempotency-Key 'k-1' was already used for a different request; use a new key for a "
        "new request"
    )
    events = c.get(acme.url(f"/tickets/{t['id']}/events"), headers=acme.as_("customer")).json()
    assert len(events) == 2
    # the same key in another account is another key
    created = c.post(
        globex.url("/tickets"),
        json={"kind": "technical", "category": "other", "subject": "s", "channel": "chat"},
        headers={**globex.as_("customer"), "Idempotency-Key": "k-1"},
    )
    assert created.status_code == 201


def test_list_filters_and_keyset_pagination(acme: Api) -> None:
    ids = [acme.create(subject=f"t{i}")["id"] for i in range(7)]
    for tid in ids[:3]:
        acme.fire(tid, "triage", "l1_agent")
    c = acme.client
    seen: list[int] = []
    cursor = None
    while True:
        q = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = c.get(acme.url(f"/tickets{q}"), headers=acme.as_("customer")).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    triaged = c.get(acme.url("/tickets?state=l1_triage"), headers=acme.as_("customer")).json()
    assert [t["id"] for t in triaged["items"]] == ids[:3]
    level = c.get(acme.url("/tickets?level=level1&limit=2"), headers=acme.as_("customer")).json()
    assert [t["id"] for t in level["items"]] == ids[:2] and level["next_cursor"]
    bad = c.get(acme.url("/tickets?cursor=zzz"), headers=acme.as_("customer"))
    assert _problem(bad, 422, "validation")["detail"] == (
        "cursor: not a cursor this service returned"
    )


def test_responses_and_customer_reply(acme: Api) -> None:
    t = acme.create()
    acme.fire(t["id"], "triage", "l1_agent")
    r = acme.client.post(
        acme.url(f"/tickets/{t['id']}/responses"),
        json={"body": "Hi Ana, we are on it"},
        headers=acme.as_("l1_agent"),
    )
    assert r.status_code == 201
    assert r.json()["sla"]["first_response"]["status"] == "met"
    acme.fire(t["id"], "request_info", "l1_agent", note="Which browser?")
    assert acme.fire(t["id"], "customer_replied", "customer")["state"] == "l1_triage"


CUSTOMER_MAY = [("cancel", None)]


def test_customer_role_limits(acme: Api) -> None:
    t = acme.create(role="customer")
    c = acme.client
    h = acme.as_("customer")
    assert c.get(acme.url(f"/tickets/{t['id']}"), headers=h).status_code == 200
    assert c.get(acme.url(f"/tickets/{t['id']}/events"), headers=h).status_code == 200
    triggers = c.get(acme.url(f"/tickets/{t['id']}/triggers"), headers=h).json()
    assert [(o["trigger"], o["allowed"]) for o in triggers] == [
        ("triage", False),
        ("take", False),
        ("cancel", True),
    ]
    assert (
        c.post(
            acme.url(f"/tickets/{t['id']}/playbook/verify_account"),
            json={"outcome": "failed"},
            headers=h,
        ).status_code
        == 403
    )
    assert acme.fire(t["id"], "cancel", "customer")["outcome"] == "cancelled"


def test_tokens_are_stored_hashed(acme: Api, engine: Tierflow) -> None:
    with engine.db.read() as conn:
        stored = {r[0] for r in conn.execute(sa.text("SELECT token_hash FROM api_token"))}
    assert not any(tok in stored for tok in acme.tokens.values())
    assert len(stored) == 7


def test_supervisor_issues_tokens_for_its_account_only(acme: Api, globex: Api) -> None:
    c = acme.client
    r = c.post(
        acme.url("/tokens"),
        json={"role": "l2_specialist", "name": "night shift"},
        headers=acme.as_("supervisor"),
    )
    assert r.status_code == 201
    assert set(r.json()) == {"id", "role", "name", "user", "expires_at", "token"}
    assert (r.json()["user"]["name"], r.json()["user"]["roles"]) == (
        "night shift",
        ["l2_specialist"],
    )
    r = c.post(
        globex.url("/tokens"),
        json={"role": "l2_specialist", "name": "x"},
        headers=acme.as_("supervisor"),
    )
    _problem(r, 404, "not-found")
    r = c.post(acme.url("/tokens"), json={"role": "admin", "name": "x"}, headers=auth(ADMIN_TOKEN))
    assert _problem(r, 422, "validation")["errors"][0]["loc"] == ["body", "role"]


def test_isolation_every_endpoint(acme: Api, globex: Api) -> None:
    """Another account's token gets 404 and none of the data, on every tenant route."""
    mine = acme.create(subject="acme secret")
    c = globex.client
    tid = mine["id"]
    calls = [
        ("GET", f"/tickets/{tid}", None),
        ("PATCH", f"/tickets/{tid}", {"urgency": "low"}),
        ("GET", f"/tickets/{tid}/triggers", None),
        ("POST", f"/tickets/{tid}/triggers/triage", {}),
        ("POST", f"/tickets/{tid}/responses", {"body": "x"}),
        ("POST", f"/tickets/{tid}/playbook/verify_account", {"outcome": "failed"}),
        ("GET", f"/tickets/{tid}/events", None),
        ("GET", "/tickets", None),
        (
            "POST",
            "/tickets",
            {"kind": "technical", "category": "other", "subject": "x", "channel": "chat"},
        ),
        ("GET", "/queue", None),
        ("POST", "/tokens", {"role": "customer", "name": "x"}),
    ]
    for role in ("supervisor", "l1_agent", "customer"):
        for method, path, body in calls:
            r = c.request(method, acme.url(path), json=body, headers=globex.as_(role))
            assert r.status_code == 404, (role, method, path, r.text)
            assert "acme secret" not in r.text
    own = c.get(globex.url("/tickets"), headers=globex.as_("supervisor")).json()
    assert own["items"] == []
    after = acme.client.get(acme.url(f"/tickets/{tid}"), headers=acme.as_("customer")).json()
    assert after["version"] == 1


def test_workflows(acme: Api) -> None:
    c = acme.client
    listed = c.get("/v1/workflows", headers=acme.as_("customer")).json()
    assert [(w["name"], w["version"], w["states"]) for w in listed] == [("support", "1.0.0", 11)]
    one = c.get("/v1/workflows/support", headers=acme.as_("integration")).json()
    assert one["definition"]["initial"] == "new"
    assert [v["version"] for v in one["versions"]] == ["1.0.0"]
    _problem(c.get("/v1/workflows/nope", headers=acme.as_("customer")), 404, "not-found")
    _problem(c.get("/v1/workflows"), 401, "unauthorized")


def test_healthz(client: TestClient, engine: Tierflow) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    real = engine.db.engine
    engine.db.engine = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    try:
        r = client.get("/healthz")
        assert (r.status_code, r.json()) == (
            503,
            {"status": "unavailable", "database": "unreachable"},
        )
    finally:
        engine.db.engine.dispose()
        engine.db.engine = real


def test_openapi_documents_every_endpoint_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        ("post", "/v1/accounts"),
        ("post", "/v1/accounts/{acct}/tokens"),
        ("post", "/v1/accounts/{acct}/tickets"),
        ("get", "/v1/accounts/{acct}/tickets"),
        ("get", "/v1/accounts/{acct}/tickets/{ticket_id}"),
        ("patch", "/v1/accounts/{acct}/tickets/{ticket_id}"),
        ("get", "/v1/accounts/{acct}/tickets/{ticket_id}/triggers"),
        ("post", "/v1/accounts/{acct}/tickets/{ticket_id}/triggers/{trigger}"),
        ("post", "/v1/accounts/{acct}/tickets/{ticket_id}/responses"),
        ("post", "/v1/accounts/{acct}/tickets/{ticket_id}/playbook/{step}"),
        ("get", "/v1/accounts/{acct}/tickets/{ticket_id}/events"),
        ("get", "/v1/workflows"),
        ("get", "/v1/workflows/{name}"),
        ("get", "/healthz"),
        ("get", "/v1/accounts/{acct}/queue"),
    }
    assert expected <= {(m, p) for p, ops in paths.items() for m in ops}
    schemas = spec["components"]["schemas"]
    for name in (
        "AccountCreate",
        "TokenCreate",
        "TicketCreate",
        "TicketUpdate",
        "FireRequest",
        "ResponseCreate",
        "PlaybookStepRequest",
        "TicketPublic",
        "TriggerOption",
        "EventPublic",
    ):
        assert schemas[name]["examples"], name
    assert client.get("/docs").status_code == 200


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_transitions_refusals_and_breaches(
    acme: Api, clock: FakeClock
) -> None:
    c = acme.client

    def scrape() -> str:
        r = c.get("/metrics", headers=auth(ADMIN_TOKEN))
        assert r.status_code == 200
        return r.text

    before = scrape()
    t = acme.create()
    acme.fire(t["id"], "triage", "l1_agent")
    acme.fire(t["id"], "start_solving", "l1_agent", expect=422)
    clock.advance(days=3)
    c.app.state.engine.scan_sla()  # type: ignore[attr-defined]
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert delta("tierflow_transitions_total", workflow="support", trigger="triage") == 1
    assert (
        delta("tierflow_guard_refusals_total", trigger="start_solving", guard="priority_known") == 1
    )
    assert delta("tierflow_sla_breaches_total", clock="first_response") == 1
    assert (
        delta(
            "tierflow_http_requests_total",
            method="POST",
            route="/v1/accounts/{acct}/tickets/{ticket_id}/triggers/{trigger}",
            status="422",
        )
        == 1
    )
    assert _metric(after, "tierflow_db_seconds_total") > 0
    _problem(c.get("/metrics", headers=acme.as_("supervisor")), 403, "forbidden")
    _problem(c.get("/metrics"), 401, "unauthorized")


def test_request_id(acme: Api) -> None:
    c = acme.client
    r = c.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = c.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"})
    assert len(r.headers["x-request-id"]) == 32
    assert r.headers["x-request-id"] != "bad id; with spaces"


def test_json_logs_carry_the_request_id_and_never_a_token(
    acme: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import logging

    from api import observability

    observability.configure_logging()
    monkeypatch.setattr(
        observability.Observability,
        "__init__",
        lambda self, app, slow_seconds=0.0, **_: (
            setattr(self, "app", app),
            setattr(self, "slow", 0.0),
        )[0],
    )
    app = create_app(
        Settings(admin_token=ADMIN_TOKEN),
        engine=acme.client.app.state.engine,  # type: ignore[attr-defined]
        background=False,
    )
    with TestClient(app) as c:
        c.get(acme.url("/tickets"), headers={**acme.as_("customer"), "X-Request-ID": "req-9"})
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [(x["msg"], x["request_id"], x["route"], x["status"]) for x in lines] == [
        ("request", "req-9", "/v1/accounts/{acct}/tickets", 200)
    ]
    assert acme.tokens["customer"] not in json.dumps(lines)
    logging.getLogger("tierflow").handlers.clear()


def test_unencodable_text_is_a_422_not_a_500(acme: Api) -> None:
    t = acme.create()
    for method, path, raw in [
        ("POST", f"/tickets/{t['id']}/triggers/triage", b'{"note":"\\ud800"}'),
        ("PATCH", f"/tickets/{t['id']}", b'{"urgency":"high","note":"\\udc00"}'),
        ("POST", f"/tickets/{t['id']}/triggers/triage", b'{"data":{"k":"\\ud800"}}'),
    ]:
        r = acme.client.request(
            method,
            acme.url(path),
            content=raw,
            headers={**acme.as_("l1_agent"), "content-type": "application/json"},
        )
        assert _problem(r, 422, "validation")["errors"][0]["loc"][0] == "body"
    assert (
        acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("customer")).json()[
            "version"
        ]
        == 1
    )


def test_an_idempotency_key_replayed_by_another_role_is_another_request(acme: Api) -> None:
    t = acme.create()
    url = acme.url(f"/tickets/{t['id']}/triggers/triage")
    first = acme.client.post(url, headers={**acme.as_("l1_agent"), "Idempotency-Key": "k"})
    assert first.status_code == 200
    borrowed = acme.client.post(url, headers={**acme.as_("customer"), "Idempotency-Key": "k"})
    _problem(borrowed, 422, "idempotency-key-reused")


def test_the_fast_trigger_path_answers_exactly_as_fastapis_path(acme: Api) -> None:
    """The trigger route answers common requests without FastAPI's parameter solving
    (``api.routes.tickets._FireRoute``); a dependency override sends every request through
    FastAPI's own path. The same requests on two twin tickets, one each way, get the same
    answers - successes, replays and every refusal."""
    app = acme.client.app  # type: ignore[attr-defined]
    twins = [acme.create()["id"], acme.create()["id"]]
    agent, customer = acme.as_("l1_agent"), acme.as_("customer")
    for tid in twins:
        assert acme.client.post(
            acme.url(f"/tickets/{tid}/triggers/triage"), headers=agent
        ).is_success
    v = acme.client.get(acme.url(f"/tickets/{twins[0]}"), headers=agent).json()["version"]
    json_type = {"Content-Type": "application/json"}
    steps: list[tuple[str, dict[str, str], bytes | None]] = [
        ("request_info", {**agent, **json_type}, b'{"note": "which username?"}'),
        ("customer_replied", customer, None),
        ("request_info", {**agent, **json_type, "If-Match": f'"{v + 2}"'}, b'{"note": "and?"}'),
        ("customer_replied", {**customer, "If-Match": "*", "Idempotency-Key": "k"}, None),
        ("customer_replied", {**customer, "If-Match": "*", "Idempotency-Key": "k"}, None),
        ("request_info", {**agent, **json_type, "If-Match": '"1"'}, b"{}"),
        ("request_info", {**agent, **json_type}, b'{"note": 5}'),
        ("request_info", {**agent, **json_type}, b'{"data": [1]}'),
        ("request_info", {**agent, **json_type}, b"null"),
        ("request_info", {**agent, **json_type}, b"{not json"),
        ("request_info", {**agent, "Content-Type": "text/plain"}, b"{}"),
        ("request_info", {**agent, **json_type, "If-Match": "three"}, b"{}"),
        ("request_info", {**agent, **json_type, "Idempotency-Key": "x" * 201}, b"{}"),
        ("request_info", {**agent, **json_type, "Idempotency-Key": " "}, b"{}"),
        ("no_such_trigger", {**agent, **json_type}, b"{}"),
        ("request_info", {"Authorization": "Bearer nope", **json_type}, b"{}"),
        ("customer_replied", {**agent, **json_type}, b"{}"),
        ("request_info", {**customer, **json_type}, b'{"note": "x"}'),
    ]

    def answers(tid: int, number: str) -> list[tuple[int, Any, str | None, str | None]]:
        out = []
        for trigger, headers, body in steps:
            if "Idempotency-Key" in headers and headers["Idempotency-Key"] == "k":
                headers = {**headers, "Idempotency-Key": f"k{tid}"}
            r = acme.client.post(
                acme.url(f"/tickets/{number}/triggers/{trigger}"), headers=headers, content=body
            )
            text = r.text.replace(f'"id":{tid},', '"id":0,').replace(f"k{tid}", "k")
            out.append(
                (r.status_code, text, r.headers.get("etag"), r.headers.get("idempotent-replayed"))
            )
        return out

    fast = answers(twins[0], str(twins[0]))
    app.dependency_overrides[test_the_fast_trigger_path_answers_exactly_as_fastapis_path] = dict
    try:
        slow = answers(twins[1], str(twins[1]))
    finally:
        app.dependency_overrides.clear()
    assert fast == slow
    assert [a[0] for a in fast[:6]] == [200, 200, 200, 200, 200, 412]  # then the refusals:
    assert [a[0] for a in fast[6:]] == [422] * 8 + [404, 401, 409, 403]
    assert fast[4][3] == "true"  # the replay
