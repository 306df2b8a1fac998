"""The real thing: `tierflow serve` on a free loopback port, 32 concurrent clients on SQLite."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from api.demo import load_demo
from api.tokens import CACHE_SECONDS, REFRESH_AFTER, TokenStore
from tests.conftest import FakeClock
from tests.live_server import ADMIN, free_port, live_server
from workflow import InputError, Tierflow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    url = f"sqlite:///{tmp_path}/served.db"
    with live_server(url, tmp_path) as live:
        yield live.base, url


def test_real_server_under_32_concurrent_clients(server: tuple[str, str]) -> None:
    base, url = server
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=base, timeout=10) as c:
        assert (
            c.post("/v1/accounts", json={"slug": "acme", "name": "Acme"}, headers=admin).status_code
            == 201
        )
        tok = {
            role: c.post(
                "/v1/accounts/acme/tokens", json={"role": role, "name": role}, headers=admin
            ).json()["token"]
            for role in ("l1_agent", "customer")
        }
        agent = {"Authorization": f"Bearer {tok['l1_agent']}"}
        customer = {"Authorization": f"Bearer {tok['customer']}"}
        ids = []
        for i in range(4):
            t = c.post(
                "/v1/accounts/acme/tickets",
                headers=customer,
                json={
                    "kind": "technical",
                    "category": "login_password",
                    "subject": f"t{i}",
                    "channel": "chat",
                },
            ).json()
            assert (
                c.post(
                    f"/v1/accounts/acme/tickets/{t['id']}/triggers/triage", headers=agent
                ).status_code
                == 200
            )
            ids.append(t["id"])

    statuses: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            for i in range(25):
                tid = ids[(n + i) % len(ids)]
                ask = (n + i) % 2 == 0
                trigger, headers = (
                    ("request_info", agent) if ask else ("customer_replied", customer)
                )
                try:
                    r = c.post(
                        f"/v1/accounts/acme/tickets/{tid}/triggers/{trigger}",
                        json={"note": "need details"} if ask else {},
                        headers=headers,
                    )
                    with lock:
                        statuses[r.status_code] += 1
                        if r.status_code not in (200, 409):
                            failures.append(r.text)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert failures == []
    assert sum(statuses.values()) == 32 * 25
    assert statuses[200] > 0
    # every 2xx is exactly one event; nothing else was written
    with httpx.Client(base_url=base, timeout=10) as c:
        fired = sum(
            len(
                [
                    e
                    for e in c.get(
                        f"/v1/accounts/acme/tickets/{tid}/events", headers=customer
                    ).json()
                    if e["kind"] == "transition"
                ]
            )
            - 1
            for tid in ids
        )
    assert fired == statuses[200]
    check = subprocess.run(
        [sys.executable, "-m", "api.cli", "--database-url", url, "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr


def test_demo_covers_every_state(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    tokens = TokenStore(tf, None)
    issued = load_demo(tf, tokens)
    assert issued is not None and set(issued) == {
        "customer",
        "l1_agent",
        "l2_specialist",
        "l3_engineer",
        "executive",
        "supervisor",
        "integration",
    }
    items, _ = tf.list_tickets(account="demo", limit=500)
    (support,) = tf.definitions()
    assert {t.state for t in items} == set(support.spec.states)
    settings = tf.account_settings(account="demo")
    assert settings.calendar is not None and settings.calendar.timezone == "America/Santiago"
    assert {t.workflow_version for t in items} == {
        f"1.0.0+calendar.{items[0].workflow_version[-8:]}"
    }
    assert load_demo(tf, tokens) is None  # a second start keeps the data as it is
    assert tf.check() == []
    tf.db.dispose()


def test_serve_refuses_an_outdated_schema(tmp_path: Path) -> None:
    from sqlmodel import SQLModel

    from workflow.db import Database

    url = f"sqlite:///{tmp_path}/old.db"
    db = Database(url)
    SQLModel.metadata.create_all(db.engine)  # tables without a recorded migration
    db.dispose()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "--database-url",
            url,
            "serve",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "run `tierflow db upgrade`" in out.stderr


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_test_server_ends_when_the_test_run_is_killed(tmp_path: Path) -> None:
    """A run killed from outside (SIGKILL: no cleanup of its own) leaves no server behind."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tests.live_server import live_server\n"
        "with live_server(sys.argv[1], Path(sys.argv[2])) as s:\n"
        "    print(s.proc.pid, flush=True)\n"
        "    time.sleep(300)\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path}/t.db", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    server = 0
    try:
        assert run.stdout is not None
        server = int(run.stdout.readline())
        assert _alive(server)
        run.kill()
        run.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded: the server's graceful shutdown
        assert not _alive(server)
    finally:
        run.kill()
        if server:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server, signal.SIGKILL)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TIERFLOW_UNIT_THREADS", "0", "Input should be greater than or equal to 1"),
        (
            "TIERFLOW_SLA_SCAN_SECONDS",
            "soon",
            "Input should be a valid number, unable to parse string as a number",
        ),
    ],
)
def test_serve_refuses_an_invalid_setting_naming_it(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    out = subprocess.run(
        [sys.executable, "-m", "api.cli", "--database-url", url, "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, name: value},
    )
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"tierflow: {name}: {message}",
        "tierflow: not started: a setting is invalid",
    ]
    assert not (tmp_path / "fresh.db").exists()  # nothing written


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_stops_cleanly_on_sigterm(tmp_path: Path, workers: int) -> None:
    """SIGTERM (what a service manager sends): uvicorn shuts down gracefully, then serve's own
    cleanup runs - the dispatcher stopped, the metrics directory removed - and it exits 0."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    url = f"sqlite:///{tmp_path}/stopped.db"
    with live_server(url, tmp_path, workers=workers, env={"TMPDIR": str(scratch)}) as live:
        assert [p.name[:17] for p in scratch.iterdir()] == ["tierflow-metrics-"]
        proc = live.proc
        assert proc is not None
    assert proc.returncode == 0, live.log()
    assert list(scratch.iterdir()) == []
    assert "Finished server process" in live.log()


@dataclass
class Ticking:
    """A token store of account acme whose monotonic clock the test moves (``ticks[0]``)."""

    tf: Tierflow
    tokens: TokenStore
    ticks: list[float]


@pytest.fixture
def ticking(db_url: str, clock: FakeClock) -> Iterator[Ticking]:
    tf = Tierflow(db_url, clock=clock)
    tf.create_account(slug="acme", name="Acme")
    ticks = [100.0]
    yield Ticking(tf, TokenStore(tf, "admin-secret", monotonic=lambda: ticks[0]), ticks)
    tf.db.dispose()


def test_tokens_resolve_from_memory_for_half_a_second_and_never_cache_a_miss(
    ticking: Ticking,
) -> None:
    tf, tokens, ticks = ticking.tf, ticking.tokens, ticking.ticks
    token_id, token, user = tokens.issue(account="acme", role="l1_agent", name="Ana")
    assert user is not None and (user.name, user.roles) == ("Ana", ("l1_agent",))
    first = tokens.resolve(token)
    assert first is not None and (first.account, first.role, first.name, first.user_id) == (
        "acme",
        "l1_agent",
        "Ana",
        user.id,
    )
    reads: list[object] = []
    tf.db.on_transaction = reads.append
    ticks[0] += CACHE_SECONDS - 0.01
    assert tokens.resolve(token) is first  # remembered: no database read ...
    assert reads == []
    ticks[0] += 0.01
    assert tokens.resolve(token) == first  # ... until the cache is half a second old
    assert len(reads) == 1
    assert tokens.resolve("tft_unknown") is None
    assert len(reads) == 2  # a miss went to the database ...
    assert tokens.resolve("tft_unknown") is None
    assert len(reads) == 3  # ... and goes again: misses are never cached
    admin = tokens.resolve("admin-secret")
    assert admin is not None and admin.is_admin
    # revoked by another process (the row changes under this store's cache): refused as soon
    # as the cache entry is CACHE_SECONDS old
    other = TokenStore(tf, "admin-secret")
    other.revoke(account="acme", token_id=token_id)
    assert tokens.resolve(token) == first
    ticks[0] += CACHE_SECONDS
    assert tokens.resolve(token) is None


def test_a_busy_tokens_entry_is_renewed_by_one_read_before_it_expires(ticking: Ticking) -> None:
    tf, tokens, ticks = ticking.tf, ticking.tokens, ticking.ticks
    token_id, token, _user = tokens.issue(account="acme", role="l1_agent", name="Ana")
    first = tokens.resolve(token)
    assert first is not None
    reads: list[object] = []
    tf.db.on_transaction = reads.append
    ticks[0] += REFRESH_AFTER - 0.01
    assert not tokens.refresh_due(token)  # young: nothing to do
    ticks[0] += 0.01
    assert tokens.refresh_due(token)  # the first request past REFRESH_AFTER re-reads ...
    assert [tokens.refresh_due(token) for _ in range(31)] == [False] * 31  # ... alone
    assert tokens.cached(token) is first  # meanwhile every request goes on with the entry
    tokens.refresh(token)
    assert len(reads) == 1
    assert not tokens.refresh_due(token)  # renewed: young again
    ticks[0] += CACHE_SECONDS - 0.01  # past the first read's expiry, not the re-read's
    assert tokens.cached(token) == first
    assert len(reads) == 1
    assert tokens.refresh_due("tft_unknown") is False  # nothing cached: resolve decides
    # revoked by another process: the re-read drops the entry; the next request is refused
    TokenStore(tf, "admin-secret").revoke(account="acme", token_id=token_id)
    assert tokens.refresh_due(token)  # the entry is CACHE_SECONDS - 0.01 old
    tokens.refresh(token)
    assert tokens.cached(token) is None and not tokens.refresh_due(token)
    assert tokens.resolve(token) is None


def test_an_expired_token_is_refused_at_its_instant(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    tf.create_account(slug="acme", name="Acme")
    tokens = TokenStore(tf, None)
    expires = clock.now + timedelta(hours=1)
    _id, token, user = tokens.issue(
        account="acme", role="integration", name="chat widget", expires_at=expires
    )
    assert user is None  # an integration's token is nobody's
    found = tokens.resolve(token)
    assert found is not None and (found.name, found.user_id) == ("chat widget", None)
    clock.set(expires - timedelta(microseconds=1))
    assert tokens.resolve(token) is not None
    clock.set(expires)
    assert tokens.resolve(token) is None  # even from the cache
    with pytest.raises(InputError) as info:
        tokens.issue(account="acme", role="customer", name="Bea", expires_at=expires)
    assert (info.value.field, info.value.detail) == (
        "expires_at",
        f"expires_at: {expires.isoformat()} is not in the future",
    )
    tf.db.dispose()


def test_an_app_built_in_process_freezes_nothing(db_url: str, clock: FakeClock) -> None:
    import gc

    from fastapi.testclient import TestClient

    from api.app import create_app

    before = gc.get_freeze_count()
    tf = Tierflow(db_url, clock=clock)
    with TestClient(create_app(engine=tf, background=False)) as client:
        assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == before  # only `app_from_env` (a server worker) freezes
    tf.db.dispose()


def test_the_admin_token_is_never_kept_by_value(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    tokens = TokenStore(tf, "admin-secret")
    for _ in range(2):
        admin = tokens.resolve("admin-secret")
        assert admin is not None and admin.is_admin
    assert "admin-secret" not in tokens._by_token
    tf.db.dispose()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_loses_no_access_log_line(tmp_path: Path, workers: int) -> None:
    """Every request answered before SIGTERM has its access log line in the log, in order
    (each worker's own): the log's writer thread is flushed at shutdown."""
    url = f"sqlite:///{tmp_path}/logged.db"
    with live_server(url, tmp_path, workers=workers) as live:
        with httpx.Client(base_url=live.base) as c:
            for i in range(200):
                assert c.get("/healthz", headers={"X-Request-ID": f"req-{i}"}).status_code == 200
        proc = live.proc
        assert proc is not None
    assert proc.returncode == 0
    by_worker: dict[int, list[int]] = {}
    for line in map(json.loads, (x for x in live.log().splitlines() if x.startswith("{"))):
        if line.get("msg") == "request" and line["request_id"].startswith("req-"):
            by_worker.setdefault(line["pid"], []).append(int(line["request_id"][4:]))
    assert sorted(n for ns in by_worker.values() for n in ns) == list(range(200))
    assert all(ns == sorted(ns) for ns in by_worker.values())
