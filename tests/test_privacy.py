"""Requesters see their own, and customers never see internal notes: the isolation sweep
extended to people. Every route of the OpenAPI document is swept (a new route is covered
without touching this file): customer A against customer B's ticket of the same account is a
404 with nothing of B's; lists, queue, history, diagrams and the stream show A only A's."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api_client import ADMIN_TOKEN, Api, auth
from tests.conftest import FakeClock
from tests.live_server import free_port
from workflow import Tierflow

B_SUBJECT = "B-SECRET subject of Bea's ticket"
B_EMAIL = "bea.secret@example.com"
INTERNAL_NOTE = "INTERNAL: suspect account takeover"


def _customer(acme: Api, name: str, email: str, **extra: Any) -> dict[str, Any]:
    """A customer user and a token of theirs."""
    r = acme.client.post(
        acme.url("/users"),
        json={"name": name, "email": email, "roles": ["customer"], **extra},
        headers=acme.as_("supervisor"),
    )
    assert r.status_code == 201, r.text
    user = r.json()
    r = acme.client.post(
        acme.url("/tokens"),
        json={"role": "customer", "name": "phone app", "user_id": user["id"]},
        headers=acme.as_("supervisor"),
    )
    assert r.status_code == 201, r.text
    return {"user": user, "headers": auth(r.json()["token"])}


def _create(acme: Api, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"kind": "technical", "category": "login_password", "channel": "chat", "subject": "x"}
    body.update(fields)
    r = acme.client.post(acme.url("/tickets"), json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _seed(acme: Api) -> dict[str, Any]:
    """Ana and Bea, customers of acme, each with a ticket triaged with an internal note."""
    ana = _customer(acme, "Ana", "ana@example.com")
    bea = _customer(acme, "Bea", B_EMAIL)
    a = _create(acme, ana["headers"], subject="Ana's own ticket")
    b = _create(acme, bea["headers"], subject=B_SUBJECT, customer={"name": "Bea", "email": B_EMAIL})
    for t in (a, b):
        acme.fire(t["id"], "triage", "l1_agent", note=INTERNAL_NOTE)
    return {"ana": ana, "bea": bea, "a": a, "b": b}


@pytest.fixture
def people(acme: Api) -> dict[str, Any]:
    return _seed(acme)


def test_a_customer_sees_and_acts_on_only_their_own_tickets(
    acme: Api, people: dict[str, Any]
) -> None:
    c, ana, a, b = acme.client, people["ana"], people["a"], people["b"]
    assert a["requester_id"] == ana["user"]["id"]
    listed = c.get(acme.url("/tickets"), headers=ana["headers"]).json()
    assert [t["id"] for t in listed["items"]] == [a["id"]]
    assert [t["id"] for t in c.get(acme.url("/queue"), headers=ana["headers"]).json()] == [a["id"]]
    r = c.get(acme.url(f"/tickets/{b['id']}"), headers=ana["headers"])
    assert r.status_code == 404 and r.json()["detail"] == f"ticket {b['id']} not found"
    # the same answer as a ticket that does not exist at all
    missing = c.get(acme.url("/tickets/999999"), headers=ana["headers"])
    assert (missing.status_code, missing.json()["type"]) == (404, r.json()["type"])
    # staff see every ticket
    staff = c.get(acme.url("/tickets"), headers=acme.as_("l1_agent")).json()
    assert {t["id"] for t in staff["items"]} == {a["id"], b["id"]}
    # Ana may cancel her own ticket, not Bea's
    assert (
        acme.client.post(
            acme.url(f"/tickets/{b['id']}/triggers/cancel"), json={}, headers=ana["headers"]
        ).status_code
        == 404
    )
    r = c.post(acme.url(f"/tickets/{a['id']}/triggers/cancel"), json={}, headers=ana["headers"])
    assert r.status_code == 200 and r.json()["state"] == "closed"
    # the live load of the account is not a requester's to see
    r = c.get(acme.url("/workflows/support/diagram.dot"), headers=ana["headers"])
    assert r.status_code == 403


def test_organisation_wide_access_and_tickets_raised_for_a_customer(
    acme: Api, people: dict[str, Any]
) -> None:
    c, a, b = acme.client, people["a"], people["b"]
    boss = _customer(acme, "Carla", "carla@example.com", org_wide=True)
    listed = c.get(acme.url("/tickets"), headers=boss["headers"]).json()
    assert {t["id"] for t in listed["items"]} == {a["id"], b["id"]}
    # ... but never an internal note
    events = c.get(acme.url(f"/tickets/{b['id']}/events"), headers=boss["headers"]).json()
    assert INTERNAL_NOTE not in json.dumps(events)
    # a ticket the help center raises for Ana (by her e-mail) is hers to see
    raised = _create(
        acme,
        acme.as_("integration"),
        subject="by phone",
        customer={"name": "Ana", "email": "ANA@example.com"},
    )
    assert raised["requester_id"] == people["ana"]["user"]["id"]
    r = c.get(acme.url(f"/tickets/{raised['id']}"), headers=people["ana"]["headers"])
    assert r.status_code == 200
    # a new e-mail makes a new customer user, who is the requester
    other = _create(
        acme, acme.as_("integration"), customer={"name": "Dan", "email": "dan@example.com"}
    )
    users = c.get(acme.url("/users"), headers=acme.as_("supervisor")).json()
    dan = [u for u in users if u["email"] == "dan@example.com"]
    assert [(u["name"], u["roles"]) for u in dan] == [("Dan", ["customer"])]
    assert other["requester_id"] == dan[0]["id"]


def test_public_and_internal_notes(acme: Api, people: dict[str, Any]) -> None:
    c, ana, a = acme.client, people["ana"], people["a"]
    url = acme.url(f"/tickets/{a['id']}")
    # a customer comments on their own ticket: public; internal is refused, naming the field
    r = c.post(
        f"{url}/comments", json={"body": "Still broken this morning"}, headers=ana["headers"]
    )
    assert r.status_code == 201, r.text
    r = c.post(
        f"{url}/comments", json={"body": "x", "visibility": "internal"}, headers=ana["headers"]
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "visibility: a customer's notes are public: internal is for staff"
    r = c.post(
        acme.url(f"/tickets/{people['b']['id']}/comments"),
        json={"body": "hi"},
        headers=ana["headers"],
    )
    assert r.status_code == 404
    # staff: a comment is internal by default, a reply public by default; both can say
    staff = acme.as_("l1_agent")
    assert (
        c.post(f"{url}/comments", json={"body": "Internal comment"}, headers=staff).status_code
        == 201
    )
    r = c.post(
        f"{url}/comments", json={"body": "We are on it", "visibility": "public"}, headers=staff
    )
    assert r.status_code == 201
    r = c.post(
        f"{url}/responses",
        json={"body": "Internal reply draft", "visibility": "internal"},
        headers=staff,
    )
    assert r.status_code == 201 and r.json()["sla"]["first_response"]["status"] == "running"
    r = c.post(f"{url}/responses", json={"body": "Please try again now"}, headers=staff)
    assert r.status_code == 201 and r.json()["sla"]["first_response"]["status"] == "met"
    r = c.post(
        f"{url}/triggers/start_solving", json={}, headers=staff
    )  # no complexity yet: refused, nothing written
    assert r.status_code == 422
    acme.patch(
        a["id"], complexity="low", urgency="low", note="Patched priority", visibility="public"
    )
    staff_view = c.get(f"{url}/events", headers=staff).json()
    assert [(e["kind"], e["note"], e["visibility"]) for e in staff_view] == [
        ("created", None, "internal"),
        ("transition", INTERNAL_NOTE, "internal"),
        ("comment", "Still broken this morning", "public"),
        ("comment", "Internal comment", "internal"),
        ("comment", "We are on it", "public"),
        ("response", "Internal reply draft", "internal"),
        ("response", "Please try again now", "public"),
        ("field_update", "Patched priority", "public"),
    ]
    customer_view = c.get(f"{url}/events", headers=ana["headers"]).json()
    assert [(e["kind"], e["note"]) for e in customer_view] == [
        ("created", None),
        ("transition", None),  # it happened; its internal note is not shown
        ("comment", "Still broken this morning"),
        ("comment", "We are on it"),
        ("response", "Please try again now"),
        ("field_update", "Patched priority"),
    ]
    for fmt in ("dot", "mmd"):
        r = c.get(f"{url}/diagram.{fmt}", headers=ana["headers"])
        assert r.status_code == 200 and "INTERNAL" not in r.text and "Internal" not in r.text


def _sample(name: str, people: dict[str, Any]) -> str:
    return {
        "acct": "acme",
        "ticket_id": str(people["b"]["id"]),
        "trigger": "cancel",
        "step": "verify_account",
        "fmt": "dot",
        "name": "support",
    }.get(name, "1")


def _example(doc: dict[str, Any], op: dict[str, Any]) -> Any:
    """A valid body for the operation: the first example of its request schema."""
    body = op.get("requestBody")
    if body is None:
        return None
    schema = body["content"]["application/json"]["schema"]
    refs = [schema.get("$ref")] + [s.get("$ref") for s in schema.get("anyOf", [])]
    ref = next(r for r in refs if r)
    model = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert model.get("examples"), f"{ref} has no example: give it one (the sweep needs it)"
    return model["examples"][0]


def _leaks(text: str) -> list[str]:
    return [s for s in (B_SUBJECT, B_EMAIL, INTERNAL_NOTE) if s in text]


def test_isolation_sweep_customer_against_another_customers_ticket(
    acme: Api, people: dict[str, Any], client: TestClient
) -> None:
    doc = client.app.openapi()  # type: ignore[attr-defined]
    ana = people["ana"]["headers"]
    swept: list[str] = []
    for path, ops in doc["paths"].items():
        if not path.startswith("/v1/accounts/{acct}") or path.endswith("/stream"):
            continue  # the stream is read in a test of its own, below
        for method, op in ops.items():
            url = re.sub(r"\{(\w+)\}", lambda m: _sample(m.group(1), people), path)
            r = client.request(method.upper(), url, json=_example(doc, op), headers=ana)
            where = f"{method.upper()} {path} -> {r.status_code}"
            assert _leaks(r.text) == [], where
            if "{ticket_id}" in path:
                assert r.status_code == 404, f"{where}: {r.text}"
                assert r.json()["type"].endswith("/not-found"), where
            assert r.status_code != 500, where
            swept.append(f"{method.upper()} {path}")
    ticket_routes = [s for s in swept if "{ticket_id}" in s]
    assert len(ticket_routes) >= 9 and "GET /v1/accounts/{acct}/tickets/{ticket_id}/events" in swept
    # Bea's ticket is untouched: still in l1_triage at version 2
    r = client.get(acme.url(f"/tickets/{people['b']['id']}"), headers=people["bea"]["headers"])
    assert (r.json()["state"], r.json()["version"]) == ("l1_triage", 2)


def test_a_customers_stream_has_only_their_tickets_and_no_internal_note(
    engine: Tierflow, db_url: str, clock: FakeClock
) -> None:
    settings = Settings(
        database_url=db_url,
        admin_token=ADMIN_TOKEN,
        access_log=False,
        stream_poll_seconds=0.02,
        stream_heartbeat_seconds=0.3,
    )
    app = create_app(settings, engine=engine, background=False)
    with TestClient(app) as c:
        acme = Api(c, "acme")
        data = _seed(acme)
        staff = acme.as_("l1_agent")
        for t in (data["a"], data["b"]):
            url = acme.url(f"/tickets/{t['id']}")
            r = c.post(f"{url}/comments", json={"body": INTERNAL_NOTE}, headers=staff)
            assert r.status_code == 201
            r = c.post(
                f"{url}/responses",
                json={"body": INTERNAL_NOTE, "visibility": "internal"},
                headers=staff,
            )
            assert r.status_code == 201
        r = c.post(
            acme.url(f"/tickets/{data['a']['id']}/comments"),
            json={"body": "public hello", "visibility": "public"},
            headers=staff,
        )
        assert r.status_code == 201
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: 5 s
        if server.started:
            break
        time.sleep(0.01)
    try:
        ana_frames = _stream(port, data["ana"]["headers"])
        staff_frames = _stream(port, auth(ADMIN_TOKEN))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    text = "\n".join(ana_frames)
    assert _leaks(text) == []
    tickets = {json.loads(f)["ticket"]["id"] for f in ana_frames}
    assert tickets == {data["a"]["id"]}
    types = [json.loads(f)["type"] for f in ana_frames]
    # the internal comment and the internal reply are left out; the triage (its note is
    # never in a frame) and the public comment are hers
    assert types == ["ticket.created", "ticket.transitioned", "ticket.commented"]
    staff_tickets = {json.loads(f)["ticket"]["id"] for f in staff_frames}
    assert staff_tickets == {data["a"]["id"], data["b"]["id"]}
    assert len(staff_frames) == 2 * 4 + 1


def _stream(port: int, headers: dict[str, str]) -> list[str]:
    """Every event's data from the start of the outbox, until the first heartbeat."""
    frames: list[str] = []
    with (
        httpx.Client(timeout=5) as client,
        client.stream(
            "GET",
            f"http://127.0.0.1:{port}/v1/accounts/acme/stream",
            headers={**headers, "Last-Event-ID": "0"},
        ) as r,
    ):
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(": heartbeat"):
                break
            if line.startswith("data: "):
                frames.append(line.removeprefix("data: "))
    return frames


def test_every_engine_method_on_an_accounts_tickets_takes_the_viewer() -> None:
    """The API binds the caller's viewer to every engine method that takes one
    (api.deps.ViewedEngine); a method reading or changing a ticket without one would bypass
    the filter, so there is none."""
    import inspect

    from api.deps import VIEWED

    unviewed = [
        name
        for name, member in inspect.getmembers(Tierflow, callable)
        if not name.startswith("_")
        and "ticket_id" in inspect.signature(member).parameters
        and name not in VIEWED
    ]
    assert unviewed == []
    assert {"get_ticket", "events", "explain", "fire", "respond", "comment"} <= VIEWED
    assert {"list_tickets", "queue"} <= VIEWED


def test_migration_0011_notes_become_internal_and_tickets_find_their_requester(
    db_url: str, clock: FakeClock
) -> None:
    import sqlalchemy as sa
    from alembic import command

    from workflow import schema
    from workflow.records import E, T

    tf = Tierflow(db_url, clock=clock)
    tf.create_account(slug="acme", name="Acme")
    ana = tf.create_user(account="acme", name="Ana", roles=["customer"])
    fields = {"kind": "technical", "category": "login_password", "channel": "chat"}
    a = tf.create_ticket(account="acme", subject="a", actor="Ana", role="customer", **fields)
    b = tf.create_ticket(
        account="acme",
        subject="b",
        customer_name="Bea",
        customer_email="bea@example.com",
        actor="widget",
        **fields,
    )
    bea = b.requester_id
    for t in (a, b):
        tf.fire(
            account="acme",
            ticket_id=t.id,
            trigger="triage",
            role="l1_agent",
            note="n",
            visibility="public",
        )
        tf.respond(account="acme", ticket_id=t.id, body="hello", role="l1_agent")
    cfg = schema._config()
    with tf.db.engine.begin() as conn:  # back to before the columns existed ...
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    schema.upgrade(tf.db)  # ... and forward again: 0010 carries the data
    with tf.db.read() as conn:
        requesters = dict(conn.execute(sa.select(T.c.number, T.c.requester_id)).all())
        kinds = conn.execute(
            sa.select(E.c.kind, E.c.visibility).where(E.c.note.is_not(None)).order_by(E.c.id)
        ).all()
    assert requesters == {a.id: ana.id, b.id: bea}
    assert [tuple(k) for k in kinds] == [
        ("transition", "internal"),  # notes become internal ...
        ("response", "public"),  # ... but a reply was sent to the customer
    ] * 2
    assert tf.check() == []
    tf.db.dispose()
