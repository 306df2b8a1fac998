"""The webhooks over HTTP: who may manage them, the answers and their errors, the delivery log
and redelivery, the dispatcher running inside the app, its metrics; and the address rules
(SSRF), table-driven, at creation and again at delivery time."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.app import create_app
from api.cli import main
from api.settings import Settings
from workflow import InputError, Tierflow
from workflow.webhooks import Webhooks
from workflow.webhooks_dispatch import Dispatcher, Send
from workflow.webhooks_urls import Refused, resolve

from .api_client import ADMIN_TOKEN, Api
from .webhook_receiver import receiver

KEY = "test-webhooks-key-0123456789abcdef"


def _settings(db_url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=db_url,
        admin_token=ADMIN_TOKEN,
        access_log=False,
        webhooks_key=KEY,
        webhooks_allow_private=True,
        **extra,
    )


@pytest.fixture
def client(tf: Tierflow, db_url: str) -> Iterator[TestClient]:
    app = create_app(_settings(db_url), engine=tf, background=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client, "globex")


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_create_answers_the_subscription_and_its_secret_once(api: Api) -> None:
    body = {
        "url": "http://127.0.0.1:9/hook",
        "events": ["ticket.transitioned", "ticket.sla_breached"],
        "description": "escalations",
    }
    r = api.client.post(api.url("/webhooks"), json=body, headers=api.as_("supervisor"))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert r.headers["location"] == api.url(f"/webhooks/{created['id']}")
    assert r.headers["cache-control"] == "no-store"
    assert {k: created[k] for k in ("url", "events", "description", "active")} == {
        **body,
        "active": True,
    }
    listed = api.client.get(api.url("/webhooks"), headers=api.as_("admin")).json()["items"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    one = api.client.get(api.url(f"/webhooks/{created['id']}"), headers=api.as_("supervisor"))
    assert one.status_code == 200 and "secret" not in one.json()


@pytest.mark.parametrize("role", ["customer", "l1_agent", "l3_engineer", "integration"])
def test_only_supervisors_and_the_admin_manage_webhooks(api: Api, role: str) -> None:
    r = api.client.post(
        api.url("/webhooks"), json={"url": "http://127.0.0.1:9/"}, headers=api.as_(role)
    )
    assert r.status_code == 403
    assert r.json()["detail"] == (
        f"role {role!r} may not manage webhooks (allowed: admin, supervisor)"
    )
    assert api.client.get(api.url("/webhooks"), headers=api.as_(role)).status_code == 403


def test_another_accounts_webhook_is_a_404(api: Api) -> None:
    other = Api(api.client, "initech")
    r = other.client.post(
        other.url("/webhooks"), json={"url": "http://127.0.0.1:9/"}, headers=other.as_("admin")
    )
    wid = r.json()["id"]
    for path in (f"/webhooks/{wid}", f"/webhooks/{wid}/deliveries"):
        r = api.client.get(api.url(path), headers=api.as_("supervisor"))
        assert r.status_code == 404, path
        assert r.json()["detail"] == f"webhook {wid} not found"
    r = api.client.get(other.url("/webhooks"), headers=api.as_("supervisor"))
    assert r.status_code == 404  # the account itself


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"url": "ftp://example.com/x"}, ["body", "url"], "only http and https"),
        ({"url": "not a url"}, ["body", "url"], "must not contain spaces"),
        ({"url": "http://u:p@127.0.0.1/"}, ["body", "url"], "must not carry credentials"),
        ({"url": "http://127.0.0.1/", "events": []}, ["body", "events"], "at least 1 item"),
        (
            {"url": "http://127.0.0.1/", "events": ["ticket.deleted"]},
            ["body", "events", 0],
            "Input should be '*'",
        ),
        ({"url": "http://127.0.0.1/", "secret": "mine"}, ["body", "secret"], "Extra inputs"),
        ({"url": "http://127.0.0.1/", "description": "x" * 501}, ["body", "description"], "500"),
        ({}, ["body", "url"], "Field required"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    api: Api, body: dict[str, Any], loc: list[Any], message: str
) -> None:
    r = api.client.post(api.url("/webhooks"), json=body, headers=api.as_("supervisor"))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "/problems/validation"
    (error,) = [e for e in problem["errors"] if e["loc"] == loc]
    assert message in error["msg"]
    assert api.client.get(api.url("/webhooks"), headers=api.as_("admin")).json()["items"] == []


def test_patch_pauses_changes_and_delete_removes(api: Api) -> None:
    h = api.as_("supervisor")
    wid = api.client.post(api.url("/webhooks"), json={"url": "http://127.0.0.1:9/"}, headers=h)
    wid = wid.json()["id"]
    r = api.client.patch(
        api.url(f"/webhooks/{wid}"),
        json={"active": False, "events": ["ticket.created"], "description": "paused"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["active"], r.json()["events"], r.json()["description"]) == (
        False,
        ["ticket.created"],
        "paused",
    )
    r = api.client.patch(api.url(f"/webhooks/{wid}"), json={"url": "gopher://x/"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "url"]
    assert api.client.delete(api.url(f"/webhooks/{wid}"), headers=h).status_code == 204
    assert api.client.get(api.url(f"/webhooks/{wid}"), headers=h).status_code == 404
    assert api.client.delete(api.url(f"/webhooks/{wid}"), headers=h).status_code == 404


def test_the_delivery_log_and_redeliver_over_http(api: Api, tf: Tierflow, send: Send) -> None:
    h = api.as_("supervisor")
    with receiver(lambda _r: 410) as rx:
        r = api.client.post(api.url("/webhooks"), json={"url": rx.url}, headers=h)
        wid = r.json()["id"]
        api.create()
        d = Dispatcher(
            api.client.app.state.webhooks,  # type: ignore[attr-defined]
            send=send,
            rng=random.Random(2),
        )
        try:
            d.run_once()
            log = api.client.get(api.url(f"/webhooks/{wid}/deliveries"), headers=h).json()
            (item,) = log["items"]
            assert log["next_cursor"] is None
            assert (item["sequence"], item["type"], item["status"], item["attempts"]) == (
                1,
                "ticket.created",
                "pending",
                1,
            )
            assert item["webhook_id"] == f"msg_{wid}_1"
            (attempt,) = item["log"]
            assert (attempt["number"], attempt["status_code"], attempt["error"]) == (
                1,
                410,
                "answered 410",
            )
            assert attempt["latency_ms"] > 0
            rx.answer = lambda _r: 200
            r = api.client.post(
                api.url(f"/webhooks/{wid}/deliveries/{item['id']}/redeliver"), headers=h
            )
            assert r.status_code == 202 and r.json()["status"] == "pending"
            d.run_once()
        finally:
            d.close()
        one = api.client.get(api.url(f"/webhooks/{wid}/deliveries/{item['id']}"), headers=h)
        assert (one.json()["status"], one.json()["attempts"]) == ("delivered", 2)
        assert [x.webhook_id for x in rx.got] == [f"msg_{wid}_1"] * 2
        r = api.client.get(api.url(f"/webhooks/{wid}/deliveries?status=dead"), headers=h).json()
        assert r["items"] == []
        r = api.client.get(api.url(f"/webhooks/{wid}/deliveries?status=lost"), headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "status"]


def test_delivery_ids_are_the_accounts_own_event_sequences(api: Api, send: Send) -> None:
    """A delivery's id is its event's sequence in the account, and a subscription's id its
    number there: another account's traffic (here initech's subscription and three tickets,
    made and delivered first) shows in none of globex's ids."""
    other = Api(api.client, "initech")
    hooks: Webhooks = api.client.app.state.webhooks  # type: ignore[attr-defined]
    d = Dispatcher(hooks, send=send, rng=random.Random(3))
    try:
        ids = {}
        for who, tickets in ((other, 3), (api, 2)):
            h = who.as_("supervisor")
            r = who.client.post(
                who.url("/webhooks"), json={"url": "http://127.0.0.1:9/"}, headers=h
            )
            ids[who.account] = r.json()["id"]
            for _ in range(tickets):
                who.create()
            d.run_once()
        assert ids == {"initech": 1, "globex": 1}  # subscriptions: numbers per account too
        h = api.as_("supervisor")
        wid = ids["globex"]
        log = api.client.get(api.url(f"/webhooks/{wid}/deliveries"), headers=h).json()
        assert [(i["id"], i["sequence"], i["webhook_id"]) for i in log["items"]] == [
            (2, 2, "msg_1_2"),
            (1, 1, "msg_1_1"),
        ]
        one = api.client.get(api.url(f"/webhooks/{wid}/deliveries/2"), headers=h)
        assert (one.status_code, one.json()["id"], one.json()["type"]) == (
            200,
            2,
            "ticket.created",
        )
        r = api.client.get(api.url(f"/webhooks/{wid}/deliveries/3"), headers=h)
        assert (r.status_code, r.json()["detail"]) == (404, "delivery 3 not found")
        r = api.client.post(api.url(f"/webhooks/{wid}/deliveries/1/redeliver"), headers=h)
        assert (r.status_code, r.json()["id"], r.json()["status"]) == (202, 1, "pending")
    finally:
        d.close()


def test_serve_dispatches_in_the_background_and_counts_it(tf: Tierflow, db_url: str) -> None:
    app = create_app(_settings(db_url, webhooks_poll_seconds=0.05, sla_scan_seconds=0), engine=tf)
    delivered_before = _sample("tierflow_webhook_deliveries_total", {"outcome": "delivered"})
    lag_before = _sample("tierflow_webhook_delivery_lag_seconds_count")
    with receiver() as rx, TestClient(app) as client:
        api = Api(client, "hooli")
        r = client.post(api.url("/webhooks"), json={"url": rx.url}, headers=api.as_("admin"))
        secret = r.json()["secret"]
        t = api.create()
        api.fire(t["id"], "triage", "l1_agent")
        deadline = time.monotonic() + 10
        while len(rx.got) < 2 and time.monotonic() < deadline:  # bounded wait for the thread
            time.sleep(0.02)
        assert [r.verify(secret)["type"] for r in rx.got] == [
            "ticket.created",
            "ticket.transitioned",
        ]
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert "tierflow_webhook_dead_letters_total" in metrics.text
    assert _sample("tierflow_webhook_deliveries_total", {"outcome": "delivered"}) == (
        delivered_before + 2
    )
    assert _sample("tierflow_webhook_delivery_lag_seconds_count") == lag_before + 2


def test_tierflow_webhooks_dispatch_runs_one_pass(
    tf: Tierflow, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERFLOW_WEBHOOKS_KEY", KEY)
    monkeypatch.setenv("TIERFLOW_WEBHOOKS_ALLOW_PRIVATE", "true")
    with receiver() as rx:
        hooks = Webhooks(tf, KEY.encode(), allow_private=True)
        sub, secret = hooks.create(account="acme", url=rx.url)
        from .scenarios import TECH, new_ticket

        new_ticket(tf, TECH)
        assert main(["--database-url", db_url, "webhooks", "dispatch"]) == 0
        assert capsys.readouterr().out == "webhooks dispatch: 1 attempt(s), 1 delivered\n"
        assert [r.verify(secret)["sequence"] for r in rx.got] == [1]
        assert main(["--database-url", db_url, "webhooks", "dispatch"]) == 0
        assert capsys.readouterr().out == "webhooks dispatch: 0 attempt(s), 0 delivered\n"
        assert sub.id == 1


NAMES = {
    "hooks.example.com": ["93.184.216.34"],
    "localhost.example": ["127.0.0.1"],
    "mixed.example": ["93.184.216.34", "10.0.0.5"],
    "v6.example": ["2606:4700::6810:84e5"],
    "metadata.example": ["169.254.169.254"],
}


def _names(host: str, _port: int) -> list[str]:
    if host not in NAMES:
        raise OSError("Name or service not known")
    return NAMES[host]


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://hooks.example.com/in", None),
        ("http://hooks.example.com:8080/in?x=1", None),
        ("http://v6.example/", None),
        ("http://[2606:4700::6810:84e5]/", None),
        ("http://93.184.216.34/", None),
        ("ftp://hooks.example.com/", "scheme 'ftp': only http and https"),
        ("file:///etc/passwd", "scheme 'file': only http and https"),
        ("hooks.example.com/in", "scheme '(none)'"),
        ("http:///in", "has no host"),
        ("http://a:b@hooks.example.com/", "must not carry credentials"),
        ("http://hooks.example.com/#top", "must not have a #fragment"),
        ("http://hooks.example.com:99999/", "not a valid URL"),
        ("http://nowhere.example/", "does not resolve"),
        ("http://127.0.0.1/", "127.0.0.1 (loopback)"),
        ("http://127.8.9.10:8000/", "(loopback)"),
        ("http://localhost.example/", "resolves to 127.0.0.1 (loopback)"),
        ("http://[::1]/", "::1 (loopback)"),
        ("http://0.0.0.0/", "(unspecified)"),
        ("http://[::]/", "(unspecified)"),
        ("http://10.1.2.3/", "(private)"),
        ("http://172.16.0.1/", "(private)"),
        ("http://192.168.1.1/", "(private)"),
        ("http://[fc00::1]/", "(private)"),
        ("http://169.254.169.254/latest/meta-data", "(link-local)"),
        ("http://metadata.example/", "169.254.169.254 (link-local)"),
        ("http://[fe80::1]/", "(link-local)"),
        ("http://224.0.0.1/", "(multicast)"),
        ("http://[ff02::1]/", "(multicast)"),
        ("http://100.64.0.1/", "(carrier-grade NAT)"),
        ("http://240.0.0.1/", "(reserved)"),
        ("http://198.51.100.7/", "(private)"),  # documentation range: never on the internet
        ("http://[::ffff:127.0.0.1]/", "(loopback, embedded in ::ffff:7f00:1)"),
        ("http://[64:ff9b::a00:1]/", "(private, embedded in 64:ff9b::a00:1)"),
        ("http://[2002:a00:1::]/", "(private, embedded in 2002:a00:1::)"),
        ("http://mixed.example/", "resolves to 10.0.0.5 (private)"),
    ],
)
def test_addresses_webhooks_may_not_go_to(url: str, refused: str | None) -> None:
    if refused is None:
        target = resolve(url, allow_private=False, resolver=_names)
        assert target.url == url
        return
    with pytest.raises(Refused) as caught:
        resolve(url, allow_private=False, resolver=_names)
    assert refused in caught.value.reason


@pytest.mark.parametrize("url", ["http://2130706433/", "http://127.1/", "http://0x7f.0.0.1/"])
def test_numeric_host_spellings_resolve_to_what_they_mean(url: str) -> None:
    """The system resolver reads these spellings of 127.0.0.1 (no DNS query is made)."""
    with pytest.raises(Refused, match=r"\(loopback\)"):
        resolve(url, allow_private=False)


def test_allow_private_lifts_the_address_rule_but_not_the_scheme_rule() -> None:
    assert resolve("http://127.0.0.1:8000/", allow_private=True).address == "127.0.0.1"
    with pytest.raises(Refused, match="only http and https"):
        resolve("ftp://127.0.0.1/", allow_private=True)


def test_refusals_at_creation_name_the_url(tf: Tierflow) -> None:
    hooks = Webhooks(tf, KEY.encode(), allow_private=False, resolver=_names)
    with pytest.raises(InputError, match=r"^url: host 'localhost.example' resolves to"):
        hooks.create(account="acme", url="http://localhost.example/")


def test_a_name_that_turns_private_after_creation_is_not_delivered_to(
    tf: Tierflow, send: Send
) -> None:
    """DNS rebinding: public when checked at creation, loopback at delivery time. The
    dispatcher checks again and never connects."""
    with receiver() as rx:
        answers = {"rebind.example": ["93.184.216.34"]}
        hooks = Webhooks(tf, KEY.encode(), allow_private=False, resolver=lambda h, _p: answers[h])
        sub, _ = hooks.create(account="acme", url=f"http://rebind.example:{rx.port}/")
        answers["rebind.example"] = ["127.0.0.1"]  # the attacker's DNS changes its answer
        from .scenarios import TECH, new_ticket

        new_ticket(tf, TECH)
        d = Dispatcher(hooks, send=send)
        try:
            d.run_once()
        finally:
            d.close()
        assert rx.got == []
        (delivery,) = hooks.deliveries(account="acme", subscription_id=sub.id)
        assert delivery.status == "pending" and delivery.last_status_code is None
        assert delivery.last_error == (
            "not sent: url host 'rebind.example' resolves to 127.0.0.1 (loopback): "
            "webhooks go to public addresses only (TIERFLOW_WEBHOOKS_ALLOW_PRIVATE=true lifts "
            "this)"
        )


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERFLOW_WEBHOOKS_ALLOW_PRIVATE", "true")
    assert Settings().webhooks_allow_private is True
    monkeypatch.delenv("TIERFLOW_WEBHOOKS_ALLOW_PRIVATE")
    assert Settings().webhooks_allow_private is False
    assert os.environ.get("TIERFLOW_WEBHOOKS_ALLOW_PRIVATE") is None


def test_on_sqlite_a_second_dispatcher_skips_while_one_holds_the_database(
    tf: Tierflow, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL dispatchers share the work instead (row locks)")
    import fcntl
    from pathlib import Path

    monkeypatch.setenv("TIERFLOW_WEBHOOKS_KEY", KEY)
    lock = Path(db_url.removeprefix("sqlite:///") + ".webhooks.lock")
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a serve worker's pass would
        assert main(["--database-url", db_url, "webhooks", "dispatch"]) == 0
        assert capsys.readouterr().out == (
            "webhooks dispatch: another dispatcher holds this SQLite database; skipped\n"
        )
    assert main(["--database-url", db_url, "webhooks", "dispatch"]) == 0
    assert capsys.readouterr().out == "webhooks dispatch: 0 attempt(s), 0 delivered\n"
