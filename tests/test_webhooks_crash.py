"""``kill -9`` of a live server (its dispatcher included) in the middle of a load: after the
restart every committed change reaches the receiver, in order, signed - and nothing that was
not committed ever does. Delivery is at least once: the run of deliveries in flight at the kill
may arrive twice, with the same webhook-ids and bodies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from workflow.webhooks_dispatch import RUN, RUN_SQLITE

from .live_server import (
    CRASH_AFTER,
    backend_params,
    crash_mid_load,
    database_for,
    live_server,
    seed,
)
from .webhook_receiver import receiver

ENV = {
    "TIERFLOW_WEBHOOKS_KEY": "crash-test-webhooks-key-0123456789abcdef",
    "TIERFLOW_WEBHOOKS_ALLOW_PRIVATE": "true",
    "TIERFLOW_WEBHOOKS_POLL_SECONDS": "0.1",
}


def _outbox(db_url: str) -> list[int]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return sorted(
                conn.execute(
                    sa.text("SELECT sequence FROM ticket_event WHERE sequence IS NOT NULL")
                ).scalars()
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", backend_params())
def test_kill_9_mid_load_delivers_every_committed_change_and_nothing_else(
    backend: tuple[str, int], tmp_path: Path
) -> None:
    name, workers = backend
    with (
        receiver() as rx,
        database_for(name, tmp_path) as db_url,
        live_server(db_url, tmp_path, workers=workers, env=ENV) as server,
    ):
        seeded = seed(server.base, tickets=3)
        r = httpx.post(
            f"{server.base}/v1/accounts/acme/webhooks",
            json={"url": rx.url},
            headers=seeded.as_("admin"),
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        before = max(_outbox(db_url))  # events before the subscription are not for it
        # the kill comes once deliveries flow: mid-load and mid-dispatch
        crash_mid_load(server, seeded, also=lambda: bool(rx.got))

        expected = [s for s in _outbox(db_url) if s > before]
        assert len(expected) >= CRASH_AFTER
        deadline = time.monotonic() + 60
        while set(rx.sequences()) != set(expected) and time.monotonic() < deadline:
            time.sleep(0.1)  # bounded wait for the restarted dispatcher
        got = rx.sequences()
        assert set(got) == set(expected), (
            f"missing {sorted(set(expected) - set(got))[:10]}, "
            f"never committed {sorted(set(got) - set(expected))[:10]}\n{server.errors()}"
        )
        first_arrivals = list(dict.fromkeys(got))
        assert first_arrivals == expected  # in sequence order
        # at most the run in flight at the kill arrives again
        assert len(got) - len(expected) <= (RUN_SQLITE if name == "sqlite" else RUN)
        for r in rx.got:
            payload = r.verify(secret)
            assert r.webhook_id == f"msg_1_{payload['sequence']}"
        bodies: dict[str, str] = {}
        for r in rx.got:
            assert bodies.setdefault(r.webhook_id, r.body) == r.body
        assert all(json.loads(b)["ticket"]["account"] == "acme" for b in bodies.values())
