"""Diagram routes: media types, the cached workflow image with ETag/304, a ticket's diagram,
the live view, Graphviz missing, isolation."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import diagrams
from api.app import create_app
from api.settings import Settings
from tests.api_client import ADMIN_TOKEN, Api
from tests.conftest import FakeClock
from workflow import Tierflow

SVG_NS = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


@pytest.fixture
def client(tmp_path: object, clock: FakeClock) -> Iterator[TestClient]:
    tf = Tierflow(f"sqlite:///{tmp_path}/d.db", clock=clock)
    app = create_app(Settings(admin_token=ADMIN_TOKEN), engine=tf, background=False)
    with TestClient(app) as c:
        yield c
    tf.db.dispose()


@pytest.fixture
def acme(client: TestClient) -> Api:
    return Api(client, "acme")


@pytest.mark.parametrize(
    ("fmt", "media", "starts"),
    [
        pytest.param("svg", "image/svg+xml", b"<?xml", marks=needs_dot),
        pytest.param("png", "image/png", b"\x89PNG", marks=needs_dot),
        ("dot", "text/vnd.graphviz; charset=utf-8", b"digraph"),
        ("mmd", "text/plain; charset=utf-8", b"%%"),
    ],
)
def test_workflow_diagram_formats_and_etag(acme: Api, fmt: str, media: str, starts: bytes) -> None:
    c = acme.client
    h = acme.as_("customer")
    r = c.get(f"/v1/workflows/support/diagram.{fmt}", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    assert r.content.startswith(starts)
    etag = r.headers["etag"]
    again = c.get(f"/v1/workflows/support/diagram.{fmt}", headers={**h, "If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    shown = c.get(f"/v1/workflows/support/diagram.{fmt}?show=guards,roles", headers=h)
    assert shown.headers["etag"] != etag


@needs_dot
def test_workflow_svg_names_every_state(acme: Api) -> None:
    r = acme.client.get("/v1/workflows/support/diagram.svg", headers=acme.as_("customer"))
    root = ET.fromstring(r.content)
    text = " ".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))
    for title in ("New", "L1: triage", "L2: advanced support", "Admin: supervisor", "Closed"):
        assert title in text


def test_bad_show_and_unknown_workflow(acme: Api) -> None:
    c = acme.client
    r = c.get("/v1/workflows/support/diagram.dot?show=colours", headers=acme.as_("customer"))
    assert r.status_code == 422 and r.json()["type"].endswith("validation")
    assert "colours" in r.json()["detail"]
    r = c.get("/v1/workflows/nope/diagram.dot", headers=acme.as_("customer"))
    assert r.status_code == 404
    r = c.get("/v1/workflows/support/diagram.gif", headers=acme.as_("customer"))
    assert r.status_code == 422


def test_ticket_diagram_highlights_its_state(acme: Api) -> None:
    t = acme.create()
    acme.fire(t["id"], "triage", "l1_agent")
    r = acme.client.get(acme.url(f"/tickets/{t['id']}/diagram.dot"), headers=acme.as_("l1_agent"))
    assert r.status_code == 200
    current = [line for line in r.text.splitlines() if "current" in line and "class=" in line]
    assert len(current) == 1 and current[0].strip().startswith("l1_triage")
    mmd = acme.client.get(acme.url(f"/tickets/{t['id']}/diagram.mmd"), headers=acme.as_("customer"))
    assert "    class l1_triage current" in mmd.text.splitlines()


def test_live_diagram(acme: Api) -> None:
    for _ in range(3):
        acme.create()
    r = acme.client.get(acme.url("/workflows/support/diagram.dot"), headers=acme.as_("supervisor"))
    assert r.status_code == 200
    new_line = next(line for line in r.text.splitlines() if line.strip().startswith("new ["))
    assert ">3 now<" in new_line
    assert 'tooltip="new: 3 ticket(s) now, 0 with a breached SLA clock' in new_line


def test_live_diagram_answers_304_until_a_ticket_moves(acme: Api) -> None:
    """The designer page polls with If-None-Match: nothing changed -> 304 without a body; a
    transition -> 200 with the new count and a new ETag."""
    t = acme.create()
    url, h = acme.url("/workflows/support/diagram.dot"), acme.as_("supervisor")
    first = acme.client.get(url, headers=h)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=0, must-revalidate"
    same = acme.client.get(url, headers={**h, "If-None-Match": etag})
    assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", etag)
    acme.fire(t["id"], "triage", "l1_agent")
    moved = acme.client.get(url, headers={**h, "If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.headers["ETag"] != etag
    line = next(x for x in moved.text.splitlines() if x.strip().startswith("l1_triage ["))
    assert ">1 now<" in line


def test_graphviz_missing_is_a_503_but_dot_still_works(
    acme: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    diagrams.output.clear_cache()
    monkeypatch.setenv("PATH", "/nonexistent")
    c = acme.client
    r = c.get("/v1/workflows/support/diagram.svg", headers=acme.as_("customer"))
    assert r.status_code == 503
    body = r.json()
    assert body["type"].endswith("graphviz-missing")
    assert "install Graphviz" in body["detail"]
    assert (
        c.get("/v1/workflows/support/diagram.dot", headers=acme.as_("customer")).status_code == 200
    )


def test_other_accounts_diagrams_are_404(client: TestClient, acme: Api) -> None:
    globex = Api(client, "globex")
    t = acme.create(subject="acme secret")
    for path in (f"/tickets/{t['id']}/diagram.dot", "/workflows/support/diagram.dot"):
        r = client.get(acme.url(path), headers=globex.as_("supervisor"))
        assert r.status_code == 404
        assert "acme secret" not in r.text
    assert client.get("/v1/workflows/support/diagram.dot").status_code == 401


# --- ticket search (the designer page's list) ----------------------------------------------------
SUBJECTS = [
    "Cannot log in",
    "Login page 100% blank",
    "Invoice_2026 wrong",
    "logout loops",
    "Ünïcode",
]


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("log", ["Cannot log in", "Login page 100% blank", "logout loops"]),
        ("LOGIN", ["Login page 100% blank"]),  # case-insensitive
        ("  page  ", ["Login page 100% blank"]),  # trimmed
        ("100%", ["Login page 100% blank"]),  # % is a character, not a wildcard
        ("%", ["Login page 100% blank"]),
        ("_", ["Invoice_2026 wrong"]),  # _ too
        ("n_o", []),  # unescaped, it would match "nvo" of Invoice
        ("Ünï", ["Ünïcode"]),
        ("", SUBJECTS),
        ("nothing like it", []),
    ],
)
def test_list_searches_the_subject(tf: Tierflow, q: str, found: list[str]) -> None:
    """Both backends (SQLite file and PostgreSQL): a parameterised ILIKE, wildcards escaped."""
    for subject in SUBJECTS:
        tf.create_ticket(
            account="acme",
            subject=subject,
            kind="technical",
            category="login_password",
            channel="chat",
        )
    page, _ = tf.list_tickets(account="acme", q=q)
    assert [t.subject for t in page] == found


def test_list_search_is_bounded_and_combines_with_filters(acme: Api) -> None:
    acme.create(subject="Cannot log in")
    acme.create(subject="cannot login either")
    h = acme.as_("l1_agent")
    r = acme.client.get(acme.url("/tickets"), params={"q": "LOG", "state": "new"}, headers=h)
    assert r.status_code == 200, r.text
    assert [t["subject"] for t in r.json()["items"]] == ["Cannot log in", "cannot login either"]
    r = acme.client.get(acme.url("/tickets"), params={"q": "x" * 101}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"loc": ["query", "q"], "msg": "q: at most 100 characters (got 101)"}
    ]
    r = acme.client.get(acme.url("/tickets"), params={"q": "x", "state": "l1_triage"}, headers=h)
    assert r.json()["items"] == []


def test_focus_shows_one_state_what_leads_in_and_out(acme: Api) -> None:
    h = acme.as_("customer")
    r = acme.client.get("/v1/workflows/support/diagram.mmd?focus=l2_solving", headers=h)
    assert r.status_code == 200
    assert r.headers["ETag"].endswith('-focus-l2_solving"')
    arrows = sorted(
        line.strip().split(" : ")[0] + " : " + line.split(" : ")[1].split(" ·")[0]
        for line in r.text.splitlines()
        if " --> " in line and "[*]" not in line
    )
    assert arrows == [
        "l1_solving --> l2_solving : escalate",
        "l1_triage --> l2_solving : escalate",
        "l2_solving --> closed : cancel",
        "l2_solving --> l3_assessment : escalate",
        "l2_solving --> resolved : resolve",
        "l2_solving --> waiting_on_customer : request_info",
        "l3_assessment --> l2_solving : return_to_l2",
        "l3_solution --> l2_solving : return_to_l2",
        "resolved --> l2_solving : reopen",
        "waiting_on_customer --> l2_solving : customer_replied",
    ]
    assert 'state "New" as new' not in r.text
    bad = acme.client.get("/v1/workflows/support/diagram.dot?focus=nowhere", headers=h)
    assert bad.status_code == 422
    (err,) = bad.json()["errors"]
    assert err["loc"] == ["query", "focus"]
    assert err["msg"].startswith("focus: unknown state 'nowhere' (known: new, l1_triage,")


def test_ticket_story_path_only(acme: Api) -> None:
    """view=path: the states the ticket visited and the transitions it took, nothing else."""
    t = acme.create()
    acme.fire(t["id"], "triage", "l1_agent")
    acme.fire(t["id"], "request_info", "l1_agent", note="Which browser?")
    h = acme.as_("l1_agent")
    r = acme.client.get(acme.url(f"/tickets/{t['id']}/diagram.mmd?view=path"), headers=h)
    assert r.status_code == 200
    lines = r.text.splitlines()
    states = sorted(x.split(" as ")[1] for x in lines if x.startswith('    state "'))
    assert states == ["l1_triage", "new", "waiting_on_customer"]
    arrows = sorted(x.strip().split(" : ")[0] for x in lines if " --> " in x)
    assert arrows == [
        "[*] --> new",
        "l1_triage --> waiting_on_customer",
        "new --> l1_triage",
    ]
    full = acme.client.get(acme.url(f"/tickets/{t['id']}/diagram.mmd"), headers=h)
    assert 'state "Closed" as closed' in full.text
    bad = acme.client.get(acme.url(f"/tickets/{t['id']}/diagram.mmd?view=map"), headers=h)
    assert bad.status_code == 422
