"""The designer's routes over HTTP: diff (JSON, SVG, Mermaid), migrations (dry run, apply) and
what-if, with their refusals as problem+json."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.api_client import ADMIN_TOKEN, Api, auth
from tests.conftest import FakeClock
from tests.variants import (
    ADD_REVIEW,
    CANCEL_REVIEW,
    PLAN_GUARD,
    REVIEW_TRANSITIONS,
    SANTIAGO,
    edited,
    variant,
)
from workflow import Tierflow, builtin_definitions

V1 = builtin_definitions()[0]


def _publish(engine: Tierflow, *edits: tuple[str, str], version: str = "1.1.0") -> None:
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(minutes=1)  # published after the shipped version
    engine.register(variant(version, *edits))


def test_diff_json_and_drawings(acme: Api, engine: Tierflow) -> None:
    _publish(engine, ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW, PLAN_GUARD)
    c, h = acme.client, acme.as_("customer")
    r = c.get("/v1/workflows/support/diff?from=1.0.0&to=1.1.0", headers=h)
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["from"]["version"], d["to"]["version"]) == ("1.0.0", "1.1.0")
    assert [e["key"] for e in d["states"]["added"]] == ["l2_review"]
    assert [e["key"] for e in d["guards"]["changed"]] == ["plan_solution@l3_assessment data_one_of"]
    # by default: the newest version against the one before it
    assert c.get("/v1/workflows/support/diff", headers=h).json() == d
    mmd = c.get("/v1/workflows/support/diff.mmd?from=1.0.0", headers=h)
    assert mmd.headers["content-type"] == "text/plain; charset=utf-8"
    assert "ask_review · + added" in mmd.text
    if shutil.which("dot"):
        svg = c.get(f"/v1/workflows/support/diff.svg?from={V1.hash}&to=1.1.0", headers=h)
        assert svg.headers["content-type"] == "image/svg+xml"
        assert b'id="state.l2_review"' in svg.content


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        ("from=9.9", 422, "from: support has no version '9.9' (published: 1.1.0, 1.0.0)"),
        ("to=nope", 422, "to: support has no version 'nope' (published: 1.1.0, 1.0.0)"),
    ],
)
def test_diff_of_unknown_versions(
    acme: Api, engine: Tierflow, query: str, status: int, detail: str
) -> None:
    _publish(engine, PLAN_GUARD)
    r = acme.client.get(f"/v1/workflows/support/diff?{query}", headers=acme.as_("customer"))
    assert (r.status_code, r.json()["detail"]) == (status, detail)
    assert r.json()["errors"][0]["loc"][0] == "query"
    r = acme.client.get("/v1/workflows/billing/diff", headers=acme.as_("customer"))
    assert r.status_code == 404


def test_migration_dry_run_then_apply(acme: Api, engine: Tierflow) -> None:
    waiting = acme.create()["id"]
    acme.fire(waiting, "triage", "l1_agent")
    acme.fire(waiting, "request_info", "l1_agent", note="which username?")
    triaged = acme.create()["id"]
    acme.fire(triaged, "triage", "l1_agent")
    _publish(engine, ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW, version="2.0.0")
    body = {
        "workflow": "support",
        "from_version": "1.0.0",
        "to_version": "2.0.0",
        "state_map": {"l1_triage": "l1_review"},
    }
    url = acme.url("/migrations")
    r = acme.client.post(url, json=body, headers=acme.as_("supervisor"))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert (plan["dry_run"], plan["movable"], plan["moved"], plan["refused"]) == (True, 1, 0, 1)
    assert plan["items"][0] == {
        "ticket": waiting,
        "from_state": "waiting_on_customer",
        "to_state": "waiting_on_customer",
        "can_move": True,
        "reason": None,
        "moved": False,
    }
    assert plan["items"][1]["reason"].startswith(
        "the state map sends 'l1_triage' to 'l1_review', which version 2.0.0 does not have"
    )
    r = acme.client.post(url, json={**body, "dry_run": False}, headers=acme.as_("supervisor"))
    assert (r.status_code, r.json()["moved"]) == (200, 1)
    ticket = acme.client.get(acme.url(f"/tickets/{waiting}"), headers=acme.as_("customer")).json()
    assert ticket["workflow"]["version"] == "2.0.0"
    events = acme.client.get(acme.url(f"/tickets/{waiting}/events"), headers=acme.as_("customer"))
    assert events.json()[-1]["kind"] == "migrated"
    assert engine.check() == []


@pytest.mark.parametrize(
    ("role", "body", "status", "needle"),
    [
        ("l1_agent", {}, 403, "role 'l1_agent' may not migrate tickets"),
        ("supervisor", {"to_version": "7.0"}, 422, "to_version: support has no version '7.0'"),
        (
            "supervisor",
            {"state_map": {"nope": "new"}},
            422,
            "state_map.nope: 'nope' is not a state",
        ),
        ("supervisor", {"dry_run": "perhaps"}, 422, "invalid field(s): body.dry_run"),
    ],
)
def test_migration_refusals(
    acme: Api, engine: Tierflow, role: str, body: dict[str, object], status: int, needle: str
) -> None:
    _publish(engine, PLAN_GUARD)
    full = {"from_version": "1.0.0", "to_version": "1.1.0", **body}
    r = acme.client.post(acme.url("/migrations"), json=full, headers=acme.as_(role))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"]


def test_what_if_of_a_calendar_change_over_http(
    acme: Api, engine: Tierflow, clock: FakeClock
) -> None:
    # on Chile's holiday (Tue 8 Dec): answered the next day at 11:00 GMT-4
    clock.set(datetime(2026, 12, 8, 13, tzinfo=UTC))
    t = acme.create()["id"]
    clock.set(datetime(2026, 12, 9, 15, tzinfo=UTC))
    r = acme.client.post(
        acme.url(f"/tickets/{t}/responses"), json={"body": "on it"}, headers=acme.as_("l1_agent")
    )
    assert r.status_code in (200, 201), r.text
    clock.set(datetime(2026, 12, 10, 12, tzinfo=UTC))
    body = {
        "candidate": {"yaml": edited("1.2.0", SANTIAGO)},
        "from": "2026-12-01T00:00:00Z",
        "to": "2027-01-01T00:00:00Z",
    }
    r = acme.client.post(acme.url("/what-if"), json=body, headers=acme.as_("supervisor"))
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["window"] == {"from": "2026-12-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
    assert a["current"]["first_response"] == {"met": 0, "breached": 1, "open": 0, "share_met": 0.0}
    assert a["candidate"]["first_response"] == {
        "met": 1,
        "breached": 0,
        "open": 0,
        "share_met": 1.0,
    }
    assert a["current"]["median_first_response_business_seconds"] == 11 * 3600
    assert a["candidate"]["median_first_response_business_seconds"] == 3 * 3600
    # a published candidate, and the default window (the last 30 days)
    _publish(engine, SANTIAGO, version="1.2.0")
    r = acme.client.post(
        acme.url("/what-if"), json={"candidate": {"version": "1.2.0"}}, headers=auth(ADMIN_TOKEN)
    )
    assert r.json()["candidate"]["first_response"] == a["candidate"]["first_response"]
    assert r.json()["window"] == {"from": "2026-11-10T12:01:00Z", "to": "2026-12-10T12:01:00Z"}


@pytest.mark.parametrize(
    ("role", "body", "status", "needle"),
    [
        ("l1_agent", {"candidate": {"version": "1.0.0"}}, 403, "may not ask what a candidate"),
        ("supervisor", {"candidate": {}}, 422, "candidate: give exactly one of version"),
        (
            "supervisor",
            {"candidate": {"version": "1.0.0", "yaml": "name: support"}},
            422,
            "candidate: give exactly one of version",
        ),
        ("supervisor", {"candidate": {"version": "3"}}, 422, "candidate.version: support has no"),
        (
            "supervisor",
            {"candidate": {"yaml": "- a list"}},
            422,
            "candidate.yaml is invalid (1 problem(s)):\n  - line 1, column 1: the top level must "
            "be a mapping",
        ),
        (
            "supervisor",
            {"candidate": {"yaml": edited("1.9", ("name: support", "name: billing"))}},
            422,
            "name: 'billing' is not 'support'",
        ),
        (
            "supervisor",
            {
                "candidate": {"version": "1.0.0"},
                "from": "2026-12-02T00:00:00Z",
                "to": "2026-12-01T00:00:00Z",
            },
            422,
            "to: 2026-12-01T00:00:00+00:00 is not after from",
        ),
        (
            "supervisor",
            {"candidate": {"version": "1.0.0"}, "to": "0001-01-05T00:00:00Z"},
            422,
            "to: 0001-01-05T00:00:00+00:00 leaves no 30 days before it",
        ),
    ],
)
def test_what_if_refusals(
    acme: Api, role: str, body: dict[str, object], status: int, needle: str
) -> None:
    r = acme.client.post(acme.url("/what-if"), json=body, headers=acme.as_(role))
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_a_designer_may_ask_and_migrate_on_any_account(
    acme: Api, client: TestClient, engine: Tierflow
) -> None:
    _publish(engine, PLAN_GUARD)
    _id, token = client.app.state.tokens.issue_platform(role="designer", name="Dana")  # type: ignore[attr-defined]
    h = auth(token)
    r = client.post(acme.url("/what-if"), json={"candidate": {"version": "1.1.0"}}, headers=h)
    assert r.status_code == 200, r.text
    body = {"from_version": "1.0.0", "to_version": "1.1.0"}
    r = client.post(acme.url("/migrations"), json=body, headers=h)
    assert (r.status_code, r.json()["dry_run"]) == (200, True)
    r = client.post("/v1/accounts/nope/migrations", json=body, headers=h)
    assert r.status_code == 404
    # another account's supervisor does not see this one
    other = Api(client, "other")
    r = client.post(
        acme.url("/what-if"),
        json={"candidate": {"version": "1.1.0"}},
        headers=other.as_("supervisor"),
    )
    assert r.status_code == 404
