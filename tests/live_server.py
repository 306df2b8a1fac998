"""A real ``tierflow serve`` for tests: start it on a free loopback port, stop it by PID.

The server runs in a session (process group) of its own, so a test can stop it gracefully
(SIGTERM to the uvicorn supervisor) or crash it (SIGKILL to the whole group: the supervisor and
its worker processes together). A fresh PostgreSQL database per test comes from
:func:`fresh_pg_database`; ``tierflow check`` runs as the CLI does, in a subprocess.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL

ADMIN = "live-server-admin"
REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 30.0
"""Seconds a server gets to answer ``/healthz``."""


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m api.cli`` child: this checkout first on its path, so
    the child runs the code under test even from a tmp dir with a stale editable install
    (seen once: a finder mapping ``api`` and ``diagrams`` as namespace packages, which broke
    ``from diagrams import ...``)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _ends_with_this_process(parent: int) -> Callable[[], None]:
    """For ``Popen(preexec_fn=...)``: the child gets SIGTERM when the process that started it
    (pytest) dies, however it dies - a test run killed from outside leaves no server behind
    (Linux ``PR_SET_PDEATHSIG``; the signal follows the thread that forked, so servers are
    started from pytest's main thread)."""

    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the wish was made
            os._exit(1)

    return arm


_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    db_url: str
    workers: int
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the server (settings)."""
    _log: Any = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def errors(self, limit: int = 3) -> str:
        """The last ``limit`` tracebacks of the log, without library frames."""
        blocks = self.log().split("Traceback (most recent call last):")[1:]
        out = []
        for block in blocks[-limit:]:
            lines = block.splitlines()
            keep, skip = [], False
            for line in lines:
                if line.startswith("  File "):
                    skip = "site-packages" in line or "<frozen" in line
                if line.startswith(("INFO:", "=====")):
                    break
                if not skip:
                    keep.append(line)
            out.append("Traceback (library frames left out):\n" + "\n".join(keep).strip("\n"))
        return "\n\n".join(out) or "(no traceback in the server log)"

    def start(self) -> None:
        """Start (or restart) the server on a new free port; return once /healthz answers."""
        assert self.proc is None, "already running"
        self.port = free_port()
        self.starts += 1
        env = child_env(
            TIERFLOW_ADMIN_TOKEN=ADMIN,
            TIERFLOW_DATABASE_URL=self.db_url,
            PYTHONUNBUFFERED="1",
            **self.env,
        )
        self._log = self.log_path.open("a")
        self._log.write(f"===== start #{self.starts} on port {self.port} =====\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.log_path.parent,
            start_new_session=True,  # its own process group: killpg reaches the workers too
            preexec_fn=_ends_with_this_process(os.getpid()),
        )
        marker = f"===== start #{self.starts} "
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"tierflow serve exited with {self.proc.returncode}:\n{self.log()}")
            # every worker must be up: one alone would take all the connections opened now,
            # and two workers would never race
            started = self.log().split(marker, 1)[-1].count("Application startup complete.")
            with contextlib.suppress(httpx.TransportError):
                if (
                    started >= self.workers
                    and httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
                ):
                    return
            time.sleep(0.1)  # bounded readiness polling
        self.stop()
        pytest.fail(
            f"tierflow serve did not answer /healthz within {READY_TIMEOUT} s:\n{self.log()}"
        )

    def crash(self) -> None:
        """SIGKILL the server's whole process group (supervisor and workers) at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reap_group()
        self._close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its group if it does not exit within 10 s."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
            self._reap_group()
        finally:
            self._close()

    def _reap_group(self) -> None:
        """Workers orphaned by a dead supervisor still belong to its group: kill them too."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _close(self) -> None:
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def live_server(
    db_url: str, tmp_path: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    server = LiveServer(
        db_url=db_url, workers=workers, log_path=tmp_path / "server.log", env=env or {}
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "tf_storm") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``TIERFLOW_TEST_POSTGRES_URL``,
    dropped afterwards; yields its SQLAlchemy URL."""
    assert PG_URL is not None
    base = sa.engine.make_url(PG_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    dsn = base.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backend_params() -> list[Any]:
    """(backend, workers): SQLite with one worker; PostgreSQL with two, when configured."""
    return [
        pytest.param(("sqlite", 1), id="sqlite-1worker"),
        pytest.param(
            ("postgresql", 2),
            id="postgresql-2workers",
            marks=pytest.mark.skipif(
                PG_URL is None,
                reason="TIERFLOW_TEST_POSTGRES_URL is unset: no PostgreSQL to run 2 workers on",
            ),
        ),
    ]


@contextlib.contextmanager
def database_for(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/storm.db"
    else:
        with fresh_pg_database() as url:
            yield url


def tierflow_check(db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "--database-url", db_url, "check"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Seeded:
    """An account on a live server: a token per role used, and tickets in l1_triage."""

    tokens: dict[str, str]
    tickets: list[int]
    setup_transitions: dict[int, int]
    """Transition events each ticket got during setup."""

    def as_(self, role: str) -> dict[str, str]:
        return auth(self.tokens[role])


def seed(base: str, *, tickets: int, account: str = "acme") -> Seeded:
    admin = auth(ADMIN)
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/v1/accounts", json={"slug": account, "name": account.title()}, headers=admin)
        assert r.status_code == 201, r.text
        tokens = {"admin": ADMIN}
        for role in ("l1_agent", "customer"):
            r = c.post(
                f"/v1/accounts/{account}/tokens",
                json={"role": role, "name": f"storm {role}"},
                headers=admin,
            )
            assert r.status_code == 201, r.text
            tokens[role] = r.json()["token"]
        ids = []
        for i in range(tickets):
            r = c.post(
                f"/v1/accounts/{account}/tickets",
                json={
                    "kind": "technical",
                    "category": "login_password",
                    "subject": f"storm ticket {i}",
                    "channel": "chat",
                },
                headers=auth(tokens["customer"]),
            )
            assert r.status_code == 201, r.text
            tid = r.json()["id"]
            r = c.post(
                f"/v1/accounts/{account}/tickets/{tid}/triggers/triage",
                headers=auth(tokens["l1_agent"]),
            )
            assert r.status_code == 200 and r.json()["state"] == "l1_triage", r.text
            ids.append(tid)
    return Seeded(tokens, ids, {tid: 1 for tid in ids})


def history(base: str, seeded: Seeded, ticket_id: int, account: str = "acme") -> list[Any]:
    r = httpx.get(
        f"{base}/v1/accounts/{account}/tickets/{ticket_id}/events",
        headers=seeded.as_("admin"),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    events: list[Any] = r.json()
    return events


CLIENTS = 4
CRASH_AFTER = 60
""":func:`crash_mid_load` kills the server once this many triggers succeeded."""
_ROLE = {"request_info": "l1_agent", "customer_replied": "customer"}


def _load(base: str, seeded: Seeded, n: int, enough: threading.Event, oks: list[int]) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(5000):  # bounded; the kill ends it long before
            tid = seeded.tickets[(n + i) % len(seeded.tickets)]
            trigger = ("request_info", "customer_replied")[(n + i // 3) % 2]
            body = {"note": "which username?"} if trigger == "request_info" else {}
            try:
                r = c.post(
                    f"/v1/accounts/acme/tickets/{tid}/triggers/{trigger}",
                    json=body,
                    headers=seeded.as_(_ROLE[trigger]),
                )
            except httpx.TransportError:
                return
            if r.status_code == 200:
                oks.append(tid)
                if len(oks) >= CRASH_AFTER:
                    enough.set()


def crash_mid_load(
    server: LiveServer, seeded: Seeded, *, also: Callable[[], bool] | None = None
) -> None:
    """Fire triggers at ``server`` from ``CLIENTS`` threads; once ``CRASH_AFTER`` of them
    succeeded (and ``also()`` holds, within 60 s), SIGKILL the server mid-load; then start it
    again."""
    enough = threading.Event()
    oks: list[int] = []
    threads = [
        threading.Thread(target=_load, args=(server.base, seeded, n, enough, oks))
        for n in range(CLIENTS)
    ]
    for th in threads:
        th.start()
    try:
        assert enough.wait(timeout=60), f"only {len(oks)} 200s in 60 s:\n{server.log()}"
        deadline = time.monotonic() + 60
        while also is not None and not also() and time.monotonic() < deadline:
            time.sleep(0.02)  # bounded: the load goes on meanwhile
        assert also is None or also(), f"not ready for the kill after 60 s:\n{server.log()}"
    finally:
        server.crash()
        for th in threads:
            th.join(timeout=60)
    server.start()
