"""``python -m bench [--quick] [--only SECTION ...] [--out PATH]``

Measures tierflow and its ceilings in one run and writes ``bench/RESULTS.md``. Sections:
engine, api, scale, memory, diagrams, clocks, whatif, webhooks; ``api-sqlite`` and ``api-pg``
are the api section's SQLite rows and PostgreSQL rows alone. ``--quick`` is a smoke check
(under a minute; CI runs it without asserting on time). Scratch files live in a temporary directory,
removed at the end (``--keep`` keeps it). Every server started is stopped by its PID; the load
is loopback only. Exit status 1 only when a section crashed - never because of a figure.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import api, clocks, diagrams, engine, memory, report, scale, webhooks, whatif
from .common import Config, machine_info, section

SECTIONS: dict[str, Callable[[Config], dict[str, Any]]] = {
    "engine": engine.run,
    "api": api.run,
    "api-sqlite": api.run_sqlite,
    "api-pg": api.run_pg,
    "scale": scale.run,
    "memory": memory.run,
    "diagrams": diagrams.run,
    "clocks": clocks.run,
    "whatif": whatif.run,
    "webhooks": webhooks.run,
}
SUBSETS = {"api-sqlite", "api-pg"}
"""Selections of a section's rows, run only when asked for (the whole run has the section)."""
DEFAULT_OUT = Path(__file__).with_name("RESULTS.md")


def _loadavg() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke check, < 1 min")
    p.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the markdown")
    p.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="HTTP load generator (auto: wrk when installed, else bench/loadgen.py)",
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = args.only or [name for name in SECTIONS if name not in SUBSETS]
    workdir = Path(tempfile.mkdtemp(prefix="tierflow-bench-"))
    cfg = Config.make(args.quick, workdir, args.loadgen)
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", "-m", "bench", *(argv or sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(),
        "load_start": _loadavg(),
    }
    results = []
    crashed = False
    try:
        for name in names:
            t0 = time.perf_counter()
            print(f"bench: {name} ...", flush=True)
            try:
                got = SECTIONS[name](cfg)
            except Exception as exc:
                crashed = True
                traceback.print_exc()
                got = section(
                    name.capitalize(),
                    [{"figure": "crashed", "value": f"{type(exc).__name__}: {exc}"}],
                    [],
                )
            got["notes"].append(f"Section time: {time.perf_counter() - t0:.0f} s.")
            results.append(got)
            print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        if args.keep:
            print(f"bench: scratch files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["load_end"] = _loadavg()
    meta["seconds"] = time.perf_counter() - started
    report.write(args.out, results, meta)
    print(f"bench: wrote {args.out} in {meta['seconds']:.0f} s")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
