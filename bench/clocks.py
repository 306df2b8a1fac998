"""SLA clocks: the cost of a clock does not grow with the ticket's age.

For a ticket received 1 day, 1 year and 50 years before "now" (an injected clock; the age
limit on ``received_at`` is lifted for the measurement): the calendar's ``between`` over that
span plus the ``add`` of a due instant, ``clock_report`` of a running clock, and the engine's
create and read of such a ticket (SQLite, in process). The issue's target: the 50-year figure
within 2x of the 1-day figure. Calendars: the shipped support calendar (Etc/GMT+4) and
America/Santiago (daylight saving time, Chilean holidays when the `holidays` package is there).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from workflow import Tierflow
from workflow.calendar import BusinessCalendar, CalendarSpec
from workflow.sla import clock_report

from .common import Config, median, row, section, time_calls

NOW = datetime.fromisoformat("2026-11-24T14:00:00-04:00")
AGES = {
    "1 day": timedelta(days=1),
    "1 year": timedelta(days=365),
    "50 years": timedelta(days=18262),
}
TARGET = "at most 2x the 1-day figure"
ACCOUNT = "clocks"


def _us(values: list[float]) -> float:
    return median(values) * 1e6


def _calendar_rows(label: str, cal: BusinessCalendar, repeats: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    base = None
    for age_label, age in AGES.items():
        start = NOW - age
        cal.between(start, NOW)  # the first call of a span fills the per-year caches

        def clock(start: datetime = start) -> None:
            cal.between(start, NOW)
            cal.add(NOW, timedelta(hours=9))

        value = _us(time_calls(clock, repeats, warmup=3))
        base = base or value
        last = age_label == "50 years"
        rows.append(
            row(
                f"{label}: between + add, received {age_label} ago",
                value,
                "µs",
                ratio=value / base,
                target=TARGET if last else "",
                met=(value <= 2 * base) if last else None,
            )
        )
    return rows


def _engine_rows(cfg: Config, repeats: int) -> list[dict[str, Any]]:
    path = cfg.workdir / "clocks.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    tf = Tierflow(f"sqlite:///{path}", clock=lambda: NOW, max_received_age=None)
    tf.create_account(slug=ACCOUNT, name="Clocks")
    d = tf.definition("support")
    rows: list[dict[str, Any]] = []
    bases: dict[str, float] = {}
    for age_label, age in AGES.items():
        ids: list[int] = []

        def create(received: datetime = NOW - age, ids: list[int] = ids) -> None:
            view = tf.create_ticket(
                account=ACCOUNT,
                kind="technical",
                category="login_password",
                subject="Cannot log in",
                channel="chat",
                received_at=received,
            )
            ids.append(view.id)

        created = _us(time_calls(create, repeats))
        read = _us(
            time_calls(lambda tid=ids[-1]: tf.get_ticket(account=ACCOUNT, ticket_id=tid), repeats)
        )
        fr = _clocks(tf, ids[-1])["first_response"]
        report = _us(time_calls(lambda fr=fr: clock_report(d, fr, NOW), repeats * 10))
        for name, value in (("create", created), ("read", read), ("clock_report", report)):
            bases.setdefault(name, value)
            last = age_label == "50 years"
            rows.append(
                row(
                    f"engine {name}, received {age_label} ago",
                    value,
                    "µs",
                    ratio=value / bases[name],
                    target=TARGET if last else "",
                    met=(value <= 2 * bases[name]) if last else None,
                )
            )
    tf.db.dispose()
    return rows


def _clocks(tf: Tierflow, ticket_id: int) -> dict[str, Any]:
    """The stored clocks of a ticket (as the engine folds them)."""
    from workflow.records import T, state_of

    with tf.db.read() as conn:
        stored = conn.execute(T.select().where(T.c.id == ticket_id)).mappings().one()
    return dict(state_of(dict(stored)).sla.clocks)


def run(cfg: Config) -> dict[str, Any]:
    repeats = 20 if cfg.quick else 200
    rows = _calendar_rows("support (Etc/GMT+4)", BusinessCalendar(CalendarSpec()), repeats)
    try:
        santiago = CalendarSpec(timezone="America/Santiago", holiday_country="CL")
    except ValueError:  # the holidays package is not installed
        santiago = CalendarSpec(timezone="America/Santiago")
    rows += _calendar_rows("America/Santiago", BusinessCalendar(santiago), repeats)
    rows += _engine_rows(cfg, 5 if cfg.quick else 30)
    notes = [
        "Median of warm calls; the ratio column is the figure / the 1-day figure of its kind.",
        "A calendar's first span over many years also fills its per-year offset cache once "
        "(a few ms per decade per calendar and process); later calls cost the figures above.",
    ]
    return section("SLA clocks by ticket age", rows, notes)
