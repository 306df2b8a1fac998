"""Shared helpers: settings per mode, statistics, result rows, processes, PostgreSQL, machine."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_DSN = os.environ.get(
    "TIERFLOW_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
ADMIN_TOKEN = "bench-admin-token"


@dataclass
class Config:
    """How much work each section does; ``quick`` keeps the whole run under a minute."""

    quick: bool
    workdir: Path
    loadgen: str = "auto"  # auto | wrk | python
    # engine
    engine_tickets: int = 64
    engine_fires: int = 4096
    engine_repeats: int = 5
    machine_fires: int = 20_000
    # api
    api_seconds: float = 10.0
    api_repeats: int = 3
    api_connections: int = 32
    api_tickets: int = 64
    api_warmup_seconds: float = 3.0
    # scale
    scale_tickets: int = 1_000_000
    scale_repeats: int = 15
    # memory
    memory_fires: int = 100_000
    memory_tickets: int = 1000
    memory_samples: int = 5
    # diagrams
    diagram_repeats: int = 15
    # what-if
    whatif_tickets: int = 100_000
    whatif_repeats: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, quick: bool, workdir: Path, loadgen: str = "auto") -> Config:
        if not quick:
            return cls(quick=False, workdir=workdir, loadgen=loadgen)
        return cls(
            quick=True,
            workdir=workdir,
            loadgen=loadgen,
            engine_fires=512,
            engine_repeats=3,
            machine_fires=3000,
            api_seconds=1.0,
            api_repeats=1,
            api_warmup_seconds=0.5,
            scale_tickets=20_000,
            scale_repeats=5,
            memory_fires=2000,
            memory_tickets=64,
            memory_samples=2,
            diagram_repeats=3,
            whatif_tickets=2000,
            whatif_repeats=1,
        )


# --- statistics ---------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# --- result rows --------------------------------------------------------------------------
def row(
    figure: str,
    value: float | str | None,
    unit: str = "",
    *,
    ceiling: float | None = None,
    ratio: float | str | None = "auto",
    target: str = "",
    met: bool | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One line of a section's table. ``ratio``: figure / ceiling by default (throughput),
    None for none (latencies), or a number."""
    if ratio == "auto":
        ok = ceiling and isinstance(value, int | float) and value == value
        ratio = float(value) / ceiling if ok else None  # type: ignore[arg-type,operator]
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "ceiling": ceiling,
        "ratio": ratio,
        "target": target,
        "met": met,
        "note": note,
    }


def section(title: str, rows: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    return {"title": title, "rows": rows, "notes": notes}


def unavailable(title: str, why: str) -> dict[str, Any]:
    return section(title, [row("not available yet", why)], [f"Not measured: {why}"])


# --- processes ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Direct and indirect child PIDs of ``pid`` (from /proc)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = [int(x) for x in (task / "children").read_text().split()]
                out.extend(kids)
                todo.extend(kids)
    return out


def rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """A server subprocess on a loopback port, stopped by its PID (and its workers' PIDs)."""

    def __init__(
        self, argv: list[str], *, port: int, env: dict[str, str], log: Path, health: str
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
        self._wait(health)

    def _wait(self, health: str, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base + health, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer {health} in {timeout:.0f} s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The processes serving requests: the workers when uvicorn forked any, else itself."""
        kids = [p for p in children_of(self.pid) if rss_kb(p) > 0]
        # uvicorn's supervisor also runs a resource tracker for multiprocessing; workers are
        # the children that listen, which are the large ones
        return kids or [self.pid]

    def stop(self) -> None:
        pids = [self.pid, *children_of(self.pid)]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in pids[1:]:  # a worker left behind by a supervisor that died
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if Path(f"/proc/{pid}").exists():
                    os.kill(pid, signal.SIGKILL)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- PostgreSQL ---------------------------------------------------------------------------
def pg_available() -> str | None:
    """None when PostgreSQL answers at PG_ADMIN_DSN, else why not."""
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_DSN, connect_timeout=3).close()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_DSN!r}: {exc}"


@contextlib.contextmanager
def pg_database(tag: str) -> Iterator[tuple[str, str]]:
    """A fresh database, dropped afterwards: (SQLAlchemy URL, libpq conninfo)."""
    import psycopg

    name = f"tierflow_bench_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    info["dbname"] = name
    conninfo = psycopg.conninfo.make_conninfo(**info)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    url = f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    try:
        yield url, conninfo
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- machine ------------------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    pg = "not reachable"
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3) as conn:
            got = conn.execute("SHOW server_version").fetchone()
            pg = str(got[0]) if got else "?"
    wrk = "not installed"
    with contextlib.suppress(Exception):
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
        wrk = (done.stdout or done.stderr).splitlines()[0].split(" Copyright")[0]
    import fastapi
    import sqlalchemy
    import transitions
    import uvicorn

    return {
        "CPU": f"{cpu} x {os.cpu_count()} (nproc {len(os.sched_getaffinity(0))})",
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": pg,
        "SQLAlchemy / FastAPI / uvicorn / transitions": (
            f"{sqlalchemy.__version__} / {fastapi.__version__} / {uvicorn.__version__} / "
            f"{getattr(transitions, '__version__', '?')}"
        ),
        "wrk": wrk,
    }
