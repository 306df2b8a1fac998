"""Holiday data is part of a definition version: the `holidays` package's dates are resolved
when the definition is first loaded, stored and hashed with it, and replay uses the stored
dates - so a newer package (other dates) changes no stored due instant and no `check`."""

from __future__ import annotations

from datetime import date, datetime
from importlib import resources
from typing import Any

import pytest
import yaml

from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, TECH, new_ticket
from workflow import Tierflow
from workflow.calendar import HOLIDAY_YEARS
from workflow.definition import Definition, parse_definition, parse_text

holidays = pytest.importorskip("holidays")
IMMACULATE_CONCEPTION = date(2026, 12, 8)  # a Tuesday, a public holiday in Chile


def at(local: str) -> datetime:
    return datetime.fromisoformat(local + "-04:00")


def chilean_support() -> Definition:
    data = yaml.safe_load(
        resources.files("workflow.definitions").joinpath("support.yaml").read_text()
    )
    data["calendar"]["holiday_country"] = "CL"
    return parse_text(yaml.safe_dump(data), source="chilean support")  # with its YAML text


def test_country_holidays_are_resolved_into_the_spec_and_its_hash() -> None:
    d = chilean_support()
    resolved = d.spec.calendar.country_holidays
    assert resolved is not None and IMMACULATE_CONCEPTION in resolved
    assert min(resolved).year == HOLIDAY_YEARS.start and max(resolved).year == HOLIDAY_YEARS[-1]
    assert d.to_dict()["calendar"]["country_holidays"][0] == min(resolved).isoformat()
    # the shipped definition has no country: its spec (and hash) carry no such key
    plain = parse_definition(
        yaml.safe_load(resources.files("workflow.definitions").joinpath("support.yaml").read_text())
    )
    assert "country_holidays" not in plain.to_dict()["calendar"]


def test_a_newer_holidays_package_changes_no_stored_due_instant_nor_check(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = chilean_support()
    tf = Tierflow(db_url, clock=clock, definitions=[d])
    tf.create_account(slug=ACCOUNT, name="Acme")
    clock.set(at("2026-12-07T17:00"))  # Mon 17:00; 9 h: 1 h Mon, Tue closed, 8 h Wed
    t = new_ticket(tf, TECH)
    assert t.sla["first_response"]["due_at"] == at("2026-12-09T17:00")
    tf.db.dispose()

    # "upgrade" the package: it no longer knows that holiday
    original = holidays.country_holidays

    def upgraded(*args: Any, **kwargs: Any) -> dict[date, str]:
        found = original(*args, **kwargs)
        return {day: name for day, name in found.items() if day != IMMACULATE_CONCEPTION}

    monkeypatch.setattr(holidays, "country_holidays", upgraded)
    reparsed = chilean_support()
    assert IMMACULATE_CONCEPTION not in (reparsed.spec.calendar.country_holidays or ())
    assert reparsed.hash != d.hash  # other dates: another definition version

    restarted = Tierflow(db_url, clock=clock, definitions=[])  # a fresh process
    clock.set(at("2026-12-08T12:00"))
    assert restarted.check() == []
    view = restarted.get_ticket(account=ACCOUNT, ticket_id=t.id)
    fr = view.sla["first_response"]
    assert (fr["due_at"], fr["elapsed_business_seconds"]) == (at("2026-12-09T17:00"), 3600.0)
    # a new event re-folds the clock on the stored version's calendar: the same due instant
    view = restarted.fire(account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent")
    assert view.sla["first_response"]["due_at"] == at("2026-12-09T17:00")
    assert view.definition_hash == d.hash
    assert restarted.check() == []
    restarted.db.dispose()
