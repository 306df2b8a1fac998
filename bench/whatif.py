"""What-if on a big account: the account's whole year of tickets (100,000 with their histories,
generated as the scale section does) replayed through a candidate definition - the calendar
moved to America/Santiago with Chile's holidays, and one guard made stricter - and through the
shipped definition itself (the replay alone, nothing to compare). SQLite, through
:func:`workflow.whatif.what_if` exactly as the route calls it (which splits a window this big
over processes, one per core). Target: within seconds."""

from __future__ import annotations

import resource
import time
from datetime import timedelta
from importlib import resources
from typing import Any

from workflow import Tierflow, parse_text
from workflow.whatif import PARALLEL_FROM, what_if

from .common import Config, median, row, section
from .scale import ACCOUNT, NOW, SPAN_DAYS, _Clock, generate

TARGET_S = 10.0


def _cpu() -> float:
    """CPU seconds of this process and of its children waited for (the what-if's parts)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _candidate() -> Any:
    text = resources.files("workflow.definitions").joinpath("support.yaml").read_text("utf-8")
    text = text.replace('version: "1.0.0"', 'version: "bench-santiago"', 1)
    text = text.replace(
        "  timezone: Etc/GMT+4       # the policy's GMT-4 (IANA inverts the sign)",
        "  timezone: America/Santiago\n  holiday_country: CL",
    )
    text = text.replace(
        "      - {name: data_one_of, args: {field: approach, values: [best, custom]}}",
        "      - {name: data_one_of, args: {field: approach, values: [best]}}",
    )
    return parse_text(text, source="bench candidate")


def run(cfg: Config) -> dict[str, Any]:
    n = cfg.whatif_tickets
    path = cfg.workdir / "whatif.db"
    info = generate(path, n)
    tf = Tierflow(f"sqlite:///{path}", clock=_Clock(NOW), create_schema=False)
    candidate = _candidate()
    since, until = NOW - timedelta(days=SPAN_DAYS + 1), NOW + timedelta(seconds=1)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for label, definition in (
        ("candidate (Santiago calendar, a stricter guard)", candidate),
        ("the shipped version itself", tf.definition("support")),
    ):
        seconds = []
        cpu = []
        report = None
        for _ in range(cfg.whatif_repeats):
            t0, c0 = time.perf_counter(), _cpu()
            report = what_if(tf, account=ACCOUNT, candidate=definition, since=since, until=until)
            seconds.append(time.perf_counter() - t0)
            cpu.append(_cpu() - c0)
        assert report is not None
        value = median(seconds)
        rows.append(
            row(
                f"what-if, {n:,} tickets: {label}",
                value,
                "s",
                target=f"≤ {TARGET_S:g} s",
                met=value <= TARGET_S,
                note=f"{report.candidate.tickets / value:,.0f} tickets/s; "
                f"{info['events'] / value:,.0f} events/s; max {max(seconds):.1f} s; "
                f"CPU time {median(cpu):.1f} s (all processes: what one idle core would take)",
            )
        )
        fr_now, fr_then = report.current.first_response, report.candidate.first_response
        notes.append(
            f"{label}: first response met {fr_now.share_met or 0:.1%} as it happened, "
            f"{fr_then.share_met or 0:.1%} on the candidate; "
            f"{report.refused_total:,} events refused; "
            f"{len(report.candidate.not_replayed)} tickets not replayed."
        )
    tf.db.dispose()
    notes.insert(
        0,
        f"Data: one account, {info['tickets']:,} tickets and {info['events']:,} history events "
        f"over {SPAN_DAYS} days (the scale section's generator), all in the window; median of "
        f"{cfg.whatif_repeats} runs. From {PARALLEL_FROM:,} tickets the replay is split over "
        "processes, one per core: the machine is shared, so figures move with its load.",
    )
    return section(f"What-if ({n:,} tickets, SQLite)", rows, notes)
