"""A revoked token is refused (401) by every worker of `tierflow serve --workers 2` within one
second: each process trusts a token it resolved for at most half a second. Which worker served
a request is read from the access log (its ``pid``, by ``X-Request-ID``)."""

from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.live_server import ADMIN, LiveServer, auth, live_server

CLIENTS = 8
_ids = itertools.count()


def _probe(base: str, token: str) -> tuple[str, float, int]:
    # a new connection each time, from several threads: the kernel spreads them over workers
    rid = f"probe-{next(_ids)}"
    r = httpx.get(
        f"{base}/v1/accounts/acme/queue",
        headers={**auth(token), "X-Request-ID": rid},
        timeout=10,
    )
    return rid, time.monotonic(), r.status_code


def _pids(live: LiveServer) -> dict[str, int]:
    """request id -> the pid of the worker that served it, from the access log."""
    out = {}
    for line in live.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == "request":
                out[entry["request_id"]] = entry["pid"]
    return out


def _served_by(live: LiveServer, rids: list[str]) -> set[int]:
    deadline = time.monotonic() + 5
    while True:  # the log is written after the answer: wait (bounded) for the lines
        pids = _pids(live)
        if all(r in pids for r in rids) or time.monotonic() > deadline:
            return {pids[r] for r in rids if r in pids}
        time.sleep(0.05)


def test_a_revoked_token_is_refused_by_every_worker_within_a_second(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/revoke.db"
    with live_server(url, tmp_path, workers=2) as live:
        base = live.base
        admin = auth(ADMIN)
        r = httpx.post(f"{base}/v1/accounts", json={"slug": "acme", "name": "Acme"}, headers=admin)
        assert r.status_code == 201
        r = httpx.post(
            f"{base}/v1/accounts/acme/tokens",
            json={"role": "integration", "name": "doomed"},
            headers=admin,
        )
        token, token_id = r.json()["token"], r.json()["id"]
        with ThreadPoolExecutor(CLIENTS) as pool:
            warm: list[tuple[str, float, int]] = []
            for _ in range(20):  # until both workers have resolved (and cached) the token
                warm += pool.map(lambda _: _probe(base, token), range(CLIENTS))
                if len(_served_by(live, [rid for rid, _, _ in warm])) == 2:
                    break
            assert {s for _, _, s in warm} == {200}
            assert len(_served_by(live, [rid for rid, _, _ in warm])) == 2
            revoked_at = time.monotonic()
            r = httpx.delete(f"{base}/v1/accounts/acme/tokens/{token_id}", headers=admin)
            assert r.status_code == 204
            seen: list[tuple[str, float, int]] = []
            while time.monotonic() < revoked_at + 2.0:  # bounded: two seconds of probing
                seen += pool.map(lambda _: _probe(base, token), range(CLIENTS))
        late = [
            round(at - revoked_at, 3)
            for _, at, status in seen
            if status == 200 and at - revoked_at >= 1.0
        ]
        assert late == []
        after = [(rid, status) for rid, at, status in seen if at - revoked_at >= 1.0]
        assert len(after) >= CLIENTS and {s for _, s in after} == {401}
        assert len(_served_by(live, [rid for rid, _ in after])) == 2  # both workers refused it
