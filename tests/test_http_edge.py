"""The HTTP edge: every bad request a clear 4xx (problem+json), every failure a problem with
its request id, a database outage a 503 with Retry-After, bounded input, security headers."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api_client import ADMIN_TOKEN, Api, auth
from workflow import Tierflow

PROBLEM = "application/problem+json"


@pytest.fixture
def client(engine: Tierflow) -> Iterator[TestClient]:
    settings = Settings(admin_token=ADMIN_TOKEN, max_body_bytes=4096, max_header_bytes=8192)
    app = create_app(settings, engine=engine, background=False)
    with TestClient(app) as c:
        yield c


def _problem(r: Any, status: int, type_end: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["type"] == "/problems/" + type_end
    assert body["status"] == status
    assert r.headers["x-request-id"]
    return body


@pytest.mark.parametrize(
    "if_match", ["1" * 4301, '"' + "9" * 19 + '"', "abc", 'W/"x"', "1, 2", "-1"]
)
def test_malformed_if_match_is_a_422_naming_the_header(acme: Api, if_match: str) -> None:
    t = acme.create()
    r = acme.client.post(
        acme.url(f"/tickets/{t['id']}/triggers/start_intake"),
        json={},
        headers={**acme.as_("l1_agent"), "If-Match": if_match},
    )
    body = _problem(r, 422, "validation")
    assert body["errors"][0]["loc"] == ["header", "if-match"]
    assert (
        acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("customer")).json()[
            "version"
        ]
        == t["version"]
    )


def test_unexpected_error_is_a_problem_with_the_request_id(
    acme: Api, engine: Tierflow, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    t = acme.create()

    def broken(**_kw: Any) -> Any:
        raise RuntimeError("boom in the engine")

    monkeypatch.setattr(engine, "get_ticket", broken)
    with caplog.at_level(logging.ERROR, logger="tierflow"):
        r = acme.client.get(
            acme.url(f"/tickets/{t['id']}"),
            headers={**acme.as_("customer"), "X-Request-ID": "req-edge-1"},
        )
    _problem(r, 500, "internal")
    assert r.headers["x-request-id"] == "req-edge-1"
    assert "boom" not in r.text and "Traceback" not in r.text
    assert any("boom in the engine" in (rec.exc_text or "") for rec in caplog.records)


def test_database_unreachable_is_503_with_retry_after(acme: Api, engine: Tierflow) -> None:
    t = acme.create()
    dbapi = engine.db.engine.dialect.loaded_dbapi

    def refuse(*_args: Any) -> Any:
        raise dbapi.OperationalError("connection refused (test)")

    engine.db.dispose()  # every pooled connection gone: the next one must connect
    sa.event.listen(engine.db.engine, "do_connect", refuse)
    try:
        for method, path in [
            ("GET", f"/tickets/{t['id']}"),
            ("GET", "/tickets"),
            ("POST", f"/tickets/{t['id']}/triggers/start_intake"),
        ]:
            r = acme.client.request(method, acme.url(path), headers=acme.as_("l1_agent"), json={})
            body = _problem(r, 503, "database-unavailable")
            assert r.headers["retry-after"] == "2"
            assert body["detail"] == "the database cannot be reached right now; retry shortly"
    finally:
        sa.event.remove(engine.db.engine, "do_connect", refuse)
    r = acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("customer"))
    assert r.status_code == 200


def test_body_over_the_limit_is_413(acme: Api) -> None:
    t = acme.create()
    r = acme.client.post(
        acme.url(f"/tickets/{t['id']}/triggers/start_intake"),
        content=b'{"note": "' + b"x" * 5000 + b'"}',
        headers={**acme.as_("l1_agent"), "Content-Type": "application/json"},
    )
    body = _problem(r, 413, "body-too-large")
    assert body["detail"] == "the request body has 5012 bytes; the limit is 4096 bytes"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"note": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = acme.client.post(
        acme.url(f"/tickets/{t['id']}/triggers/start_intake"),
        content=chunks(),
        headers={**acme.as_("l1_agent"), "Content-Type": "application/json"},
    )
    body = _problem(r, 413, "body-too-large")
    assert body["detail"] == "the request body has more; the limit is 4096 bytes"
    r = acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("customer"))
    assert r.json()["version"] == t["version"]


def test_data_over_64_kib_is_422_naming_data(engine: Tierflow) -> None:
    app = create_app(Settings(admin_token=ADMIN_TOKEN), engine=engine, background=False)
    with TestClient(app) as client:
        acme = Api(client, "acme")
        t = acme.create()
        r = client.post(
            acme.url(f"/tickets/{t['id']}/triggers/start_intake"),
            json={"data": {"blob": "x" * 70_000}},
            headers=acme.as_("l1_agent"),
        )
        body = _problem(r, 422, "validation")
        assert body["errors"][0]["loc"] == ["body", "data"]
        assert body["errors"][0]["msg"] == (
            "Value error, serialised to 70012 bytes; the limit is 65536"
        )


def test_headers_over_the_limit_are_431(acme: Api) -> None:
    r = acme.client.get(
        acme.url("/tickets"), headers={**acme.as_("customer"), "X-Padding": "p" * 9000}
    )
    body = _problem(r, 431, "headers-too-large")
    assert body["detail"].endswith("the limit is 8192")


def test_405_carries_allow(client: TestClient) -> None:
    r = client.delete("/v1/accounts", headers=auth(ADMIN_TOKEN))
    _problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "POST"
    acme_url = "/v1/accounts/acme/tickets/1"
    r = client.delete(acme_url, headers=auth(ADMIN_TOKEN))  # GET and PATCH are two routes
    _problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "GET, PATCH"


def test_duplicate_account_slug_is_409(acme: Api) -> None:
    r = acme.client.post(
        "/v1/accounts", json={"slug": "acme", "name": "Again"}, headers=auth(ADMIN_TOKEN)
    )
    body = _problem(r, 409, "conflict")
    assert body["detail"] == "slug: account 'acme' already exists"


@pytest.mark.parametrize("path", ["/healthz", "/v1/workflows", "/ui/", "/nowhere", "/openapi.json"])
def test_security_headers_on_every_answer(acme: Api, path: str) -> None:
    r = acme.client.get(path, headers=acme.as_("customer"))
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    if path == "/ui/":
        assert r.headers["content-security-policy"].startswith(
            "default-src 'self'; script-src 'self'; style-src 'self';"
        )


def test_token_answers_are_not_cached(acme: Api) -> None:
    r = acme.client.post(
        acme.url("/tokens"), json={"role": "l1_agent", "name": "x"}, headers=auth(ADMIN_TOKEN)
    )
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"


def test_a_slow_engine_call_does_not_stall_another_request(
    acme: Api, engine: Tierflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = acme.create()
    entered, release = threading.Event(), threading.Event()
    real = engine.get_ticket

    def slow(**kw: Any) -> Any:
        if kw.get("ticket_id") == t["id"]:
            entered.set()
            assert release.wait(10)
        return real(**kw)

    monkeypatch.setattr(engine, "get_ticket", slow)
    answers: list[int] = []

    def first() -> None:
        r = acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("customer"))
        answers.append(r.status_code)

    worker = threading.Thread(target=first)
    worker.start()
    try:
        assert entered.wait(10)
        r = acme.client.get("/healthz")  # served while the slow call is still blocked
        assert r.status_code == 200
        assert not answers
    finally:
        release.set()
        worker.join(10)
    assert answers == [200]


@pytest.mark.parametrize(
    ("path", "name", "value", "first_known"),
    [
        ("/tickets", "state", "foo", "'foo' (known: new, "),
        ("/tickets", "level", "2", "'2' (known: level1, level2, level3, administrative)"),
        ("/tickets", "priority", "P9", "'P9' (known: P1, P2, P3, P4)"),
        ("/tickets", "category", "nope", "'nope' (known: "),
        ("/queue", "level", "2", "'2' (known: level1, level2, level3, administrative)"),
    ],
)
def test_unknown_filter_values_are_422_naming_the_known_ones(
    acme: Api, path: str, name: str, value: str, first_known: str
) -> None:
    acme.create()
    r = acme.client.get(acme.url(path), params={name: value}, headers=acme.as_("l1_agent"))
    body = _problem(r, 422, "validation")
    assert body["detail"].startswith(f"{name}: unknown filter {first_known}")
    assert body["errors"][0]["loc"] == ["query", name]


@pytest.mark.parametrize(
    ("name", "value"), [("state", "new"), ("level", "level1"), ("category", "login_password")]
)
def test_known_filter_values_still_filter(acme: Api, name: str, value: str) -> None:
    acme.create()
    r = acme.client.get(acme.url("/tickets"), params={name: value}, headers=acme.as_("l1_agent"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_work_offline(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", r.text)
    assert urls and "/openapi.json" in urls
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        assert client.get(url).status_code == 200, url
    assert "cdn" not in r.text.lower() and "https://" not in r.text


def test_openapi_is_as_strict_as_the_server(client: TestClient, engine: Tierflow) -> None:
    doc = client.get("/openapi.json").json()
    models = doc["components"]["schemas"]
    spec = engine.definitions()[0].spec
    assert models["TicketCreate"]["properties"]["kind"]["enum"] == list(spec.kinds)
    assert models["TicketCreate"]["properties"]["channel"]["enum"] == spec.channels
    assert models["TokenCreate"]["properties"]["role"]["enum"] == spec.roles
    categories = [c for k in spec.kinds.values() for c in k.categories]
    assert models["TicketCreate"]["properties"]["category"]["enum"] == categories
    update = models["TicketUpdate"]["properties"]["category"]["anyOf"]
    assert {"type": "string", "enum": categories} in update

    def params(path: str) -> dict[str, Any]:
        return {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}

    tickets = params("/v1/accounts/{acct}/tickets")
    assert tickets["state"]["schema"]["anyOf"][0]["enum"] == list(spec.states)
    assert tickets["priority"]["schema"]["anyOf"][0]["enum"] == spec.priorities
    assert tickets["cursor"]["schema"]["anyOf"][0]["pattern"] == "^[A-Za-z0-9_-]+$"
    queue = params("/v1/accounts/{acct}/queue")
    assert queue["level"]["schema"]["anyOf"][0]["enum"] == [
        "level1",
        "level2",
        "level3",
        "administrative",
    ]
    fire = doc["paths"]["/v1/accounts/{acct}/tickets/{ticket_id}/triggers/{trigger}"]["post"]
    if_match = {p["name"]: p for p in fire["parameters"]}["if-match"]
    assert if_match["schema"]["pattern"].startswith("^\\s*(\\*|")
    diagram = doc["paths"]["/v1/workflows/{name}/diagram.{fmt}"]["get"]["responses"]
    assert "304" in diagram and "content" not in diagram["304"]
    assert "409" in doc["paths"]["/v1/accounts"]["post"]["responses"]
