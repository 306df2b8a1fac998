"""RESULTS.md: the machine, the date, the command, then one table per section (figure, tierflow,
ceiling, ratio, target, met?) with its notes, a summary of the targets, and the hand-written
profiles and fixes (``bench/FINDINGS.md``) when present."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

FINDINGS = Path(__file__).with_name("FINDINGS.md")


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if unit in ("req/s", "fires/s"):
        text = f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(met: bool | None) -> str:
    return {True: "✅ yes", False: "❌ **no**", None: ""}[met]


def _ratio(r: dict[str, Any]) -> str:
    ratio = r.get("ratio")
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return "—"
    return f"{ratio:.0%}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| figure | tierflow | ceiling | ratio | target | met? | notes |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        unit = r.get("unit", "")
        out.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    r["figure"],
                    fmt(r["value"], unit),
                    fmt(r.get("ceiling"), unit) if r.get("ceiling") is not None else "—",
                    _ratio(r),
                    r.get("target", ""),
                    _met(r.get("met")),
                    r.get("note", ""),
                )
            )
            + " |"
        )
    return out


def render(sections: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# tierflow benchmarks",
        "",
        "Written by `python -m bench` (see `bench/__main__.py`). Benchmarks, not tests: nothing "
        "here fails on timing. Each tierflow figure is measured in the same run as its ceiling "
        "- the same work done as leanly as the stack allows - and **ratio = tierflow / "
        "ceiling** (throughput; for costs per operation, ceiling / tierflow).",
        "",
        f"- **Date:** {meta['date']}",
        f"- **Command:** `{meta['command']}` ({meta['mode']} mode, {meta['seconds']:.0f} s)",
        f"- **Load average** (1/5/15 min) at start {meta['load_start']}, at end "
        f"{meta['load_end']} - the machine is shared, so absolute figures move between runs; "
        "ratios are more stable because each ceiling runs in the same minutes.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {_cell(str(v))} |" for k, v in meta["machine"].items()),
        "",
        "## Targets",
        "",
        "The project's budget (from the issue): API ≥ 50 % of its ceiling with 0 errors and "
        "p99 ≤ 30 ms on SQLite; engine ≥ 35 % of the SQLAlchemy Core ceiling; each "
        "1M-ticket query ≤ 20 ms; RSS growth < 20 MB over 100,000 fires.",
        "",
        "| section | figure | measured | target | met? |",
        "|---|---|---:|---|---|",
    ]
    for s in sections:
        for r in s["rows"]:
            if r.get("met") is None:
                continue
            shown = (
                f"{_ratio(r)} of ceiling"
                if r.get("ratio") is not None and "ceiling" in r.get("target", "")
                else fmt(r["value"], r.get("unit", ""))
            )
            lines.append(
                f"| {_cell(s['title'])} | {_cell(r['figure'])} | {shown} | "
                f"{r['target']} | {_met(r['met'])} |"
            )
    for s in sections:
        lines += ["", f"## {s['title']}", "", *table(s["rows"]), ""]
        lines += [f"- {_cell(n)}" for n in s["notes"]]
    if FINDINGS.exists():
        lines += ["", FINDINGS.read_text().strip()]
    return "\n".join(lines).rstrip() + "\n"


def write(path: Path, sections: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(sections, meta))
