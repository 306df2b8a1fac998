"""Per-account settings: the account's name and business calendar. A Santiago account's due
instants follow Chile's clock (summer time, UTC-3) and Chile's holidays (18 September), new
tickets take the account's calendar pinned, open tickets keep theirs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.api_client import Api
from tests.conftest import FakeClock
from workflow import Tierflow

WEEKDAYS = {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
SANTIAGO = {"timezone": "America/Santiago", "hours": WEEKDAYS, "holiday_country": "CL"}


def _patch(acme: Api, body: dict[str, Any], role: str = "supervisor") -> Any:
    return acme.client.patch(acme.url(""), json=body, headers=acme.as_(role))


def _due(acme: Api, received: str) -> tuple[str, str]:
    t = acme.create(role="integration", received_at=received)
    return t["sla"]["first_response"]["due_at"], t["workflow"]["version"]


def test_a_santiago_account_in_chilean_summer_time_and_on_18_september(
    acme: Api, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 12, 1, 22, 0, tzinfo=UTC))
    # Tue 1 Dec 2026 21:30Z: 18:30 in Santiago (summer time, UTC-3: closed), 17:30 in the
    # definition's fixed GMT-4 (open for half an hour)
    assert _due(acme, "2026-12-01T21:30:00Z") == ("2026-12-02T21:30:00Z", "1.0.0")
    r = _patch(acme, {"name": "Acme Chile", "calendar": SANTIAGO})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["calendar"]["timezone"], body["calendar"]["holiday_country"]) == (
        "Acme Chile",
        "America/Santiago",
        "CL",
    )
    assert body["country_holidays"] > 1000  # 1970-2100, resolved now and stored
    due, version = _due(acme, "2026-12-01T21:30:00Z")
    assert due == "2026-12-02T21:00:00Z"  # Wed 18:00 in Santiago: 9 hours from Wed 09:00
    assert version.startswith("1.0.0+calendar.")
    # Thu 17 Sep 2026 10:00 in Santiago (13:00Z): 8 hours that day, Friday 18 (Independence
    # Day) and Saturday 19 closed, the ninth hour on Monday 21: 10:00 local = 13:00Z
    clock.set(datetime(2026, 9, 17, 14, 0, tzinfo=UTC))
    assert _due(acme, "2026-09-17T13:00:00Z")[0] == "2026-09-21T13:00:00Z"


def test_open_tickets_keep_their_calendar(acme: Api, clock: FakeClock, engine: Tierflow) -> None:
    clock.set(datetime(2026, 12, 1, 22, 0, tzinfo=UTC))
    assert _patch(acme, {"calendar": SANTIAGO}).status_code == 200
    t = acme.create(role="integration", received_at="2026-12-01T21:30:00Z")
    # back to the definition's calendar (Etc/GMT+4): new tickets take it, the open one not
    r = _patch(acme, {"calendar": None})
    assert r.status_code == 200 and r.json()["calendar"] is None
    assert _due(acme, "2026-12-01T21:30:00Z") == ("2026-12-02T21:30:00Z", "1.0.0")
    again = acme.client.get(acme.url(f"/tickets/{t['id']}"), headers=acme.as_("l1_agent")).json()
    assert again["sla"]["first_response"]["due_at"] == "2026-12-02T21:00:00Z"
    assert again["workflow"] == t["workflow"]
    acme.fire(t["id"], "triage", "l1_agent")  # units of work run on the pinned calendar too
    assert engine.check() == []
    # the calendar variant is a stored version of its own, but not a publication
    assert [v for v, _h, _at in engine.versions("support")] == ["1.0.0"]


def test_account_settings_refusals(acme: Api) -> None:
    assert _patch(acme, {"name": "x"}, role="l1_agent").status_code == 403
    r = _patch(acme, {"calendar": {**SANTIAGO, "timezone": "Mars/Olympus"}})
    assert r.status_code == 422 and r.json()["detail"].startswith("calendar")
    assert "Mars/Olympus" in r.json()["detail"]
    r = _patch(acme, {"calendar": {**SANTIAGO, "hours": {"mon": ["18:00-09:00"]}}})
    assert r.status_code == 422 and "calendar" in r.json()["detail"]
    r = _patch(acme, {})
    assert (
        r.status_code == 422
        and r.json()["detail"] == "body: nothing to change: give name or calendar"
    )
    got = acme.client.get(acme.url(""), headers=acme.as_("customer")).json()
    assert got == {"slug": "acme", "name": "Acme", "calendar": None, "country_holidays": 0}


def test_a_calendar_body_is_as_strict_as_its_schema(acme: Api) -> None:
    for bad, where in [
        ({**SANTIAGO, "holidays": [0]}, ["body", "calendar", "holidays", 0]),
        ({**SANTIAGO, "holiday_subdivision": ""}, ["body", "calendar", "holiday_subdivision"]),
        ({**SANTIAGO, "timezone": ""}, ["body", "calendar", "timezone"]),
    ]:
        r = _patch(acme, {"calendar": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == where, r.text
    r = _patch(acme, {"calendar": {**SANTIAGO, "holidays": ["2026-13-45"]}})
    assert r.status_code == 422 and r.json()["detail"].startswith("calendar.holidays")
    r = _patch(acme, {"calendar": {**SANTIAGO, "holidays": ["2026-12-24"]}})
    assert r.status_code == 200 and r.json()["calendar"]["holidays"] == ["2026-12-24"]
