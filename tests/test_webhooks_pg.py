"""Two ``tierflow serve`` processes (two workers each: four dispatchers) on one PostgreSQL
database, under load through both: every event reaches each subscription exactly once, in
order, and each delivery was attempted exactly once (the row lock taken with ``FOR UPDATE
SKIP LOCKED`` lets one dispatcher at a time serve a subscription)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import PG_URL
from .live_server import fresh_pg_database, live_server, seed
from .test_webhooks_crash import ENV
from .webhook_receiver import receiver

pytestmark = pytest.mark.skipif(PG_URL is None, reason="TIERFLOW_TEST_POSTGRES_URL is unset")
SUBSCRIPTIONS = 3
FIRES = 40


def test_two_servers_never_deliver_the_same_attempt_twice(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        receiver() as rx,
        fresh_pg_database("tf_webhooks") as db_url,
        live_server(db_url, tmp_path / "a", workers=2, env=ENV) as a,
        live_server(db_url, tmp_path / "b", workers=2, env=ENV) as b,
    ):
        seeded = seed(a.base, tickets=4)
        subs = []
        for i in range(SUBSCRIPTIONS):
            r = httpx.post(
                f"{a.base}/v1/accounts/acme/webhooks",
                json={"url": f"{rx.url}/{i}"},
                headers=seeded.as_("admin"),
            )
            assert r.status_code == 201, r.text
            subs.append(r.json()["id"])

        def load(base: str, offset: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as c:
                for i in range(FIRES // 2):
                    tid = seeded.tickets[(offset + i) % len(seeded.tickets)]
                    r = c.post(
                        f"/v1/accounts/acme/tickets/{tid}/responses",
                        json={"body": f"reply {offset}/{i}"},
                        headers=seeded.as_("admin"),
                    )
                    assert r.status_code == 201, r.text

        threads = [threading.Thread(target=load, args=(s.base, n)) for n, s in enumerate((a, b))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        want = SUBSCRIPTIONS * FIRES
        deadline = time.monotonic() + 60
        while len(rx.got) < want and time.monotonic() < deadline:
            time.sleep(0.1)  # bounded wait for the dispatchers
        time.sleep(1)  # a duplicate would show up within a poll or two
        assert len(rx.got) == want, f"{len(rx.got)} of {want}\n{a.errors()}\n{b.errors()}"
        for i, sid in enumerate(subs):
            ids = [r.webhook_id for r in rx.got if r.path == f"/hook/{i}"]
            sequences = [int(x.rsplit("_", 1)[1]) for x in ids]
            assert len(ids) == len(set(ids)) == FIRES
            assert sequences == sorted(sequences)  # in order
            r = httpx.get(
                f"{a.base}/v1/accounts/acme/webhooks/{sid}/deliveries?limit=200",
                headers=seeded.as_("admin"),
            )
            log = r.json()["items"]
            assert [(d["status"], d["attempts"], len(d["log"])) for d in log] == [
                ("delivered", 1, 1)
            ] * FIRES
